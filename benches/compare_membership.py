#!/usr/bin/env python3
"""Membership statistics, side by side in one run: phiprobe (release binary, `bench-mia`) and
scikit-learn's roc_curve / roc_auc_score on the *same* 100 k scores (written by phiprobe), plus
phiprobe's full analysis (9 attacks, every metric, 1,000 bootstrap resamples each) for 100 k
records × 16 reference models and RMIA with 100 k records against 100 k population points, each
with its peak memory (ru_maxrss of the child process).

    $REFENV/bin/python benches/compare_membership.py [--records 100000] [--references 16]

Needs numpy + scikit-learn (the reference environment, ../shared/tools/reference-env.sh) and
`cargo build --release`; GNU time (/usr/bin/time) for peak memory.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
from sklearn.metrics import auc, roc_auc_score, roc_curve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/phiprobe")


def run(args):
    """Runs phiprobe bench-mia; returns (parsed JSON, peak RSS of that child in MiB)."""
    # GNU time measures the exec'd program itself (a fork of this Python process would report
    # the interpreter's own resident set as the child's peak).
    p = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "bench-mia", *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"phiprobe bench-mia {' '.join(args)} failed: {p.stderr}")
    return json.loads(p.stdout), int(p.stderr.strip().splitlines()[-1]) / 1024.0


def best(f, repeat):
    t = float("inf")
    v = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        v = f()
        t = min(t, time.perf_counter() - t0)
    return t, v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--references", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    n = a.records
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scores.bin")
        roc, roc_mem = run(["--mode", "roc", "--records", str(n), "--references", "0",
                      "--repeat", str(a.repeat), "--scores-out", path])
        raw = open(path, "rb").read()
        scores = np.frombuffer(raw[: 8 * n], dtype="<f8")
        labels = np.frombuffer(raw[8 * n:], dtype=np.uint8).astype(bool)
    t_curve, sk_auc = best(lambda: auc(*roc_curve(labels, scores)[:2]), a.repeat)
    t_score, sk_auc2 = best(lambda: roc_auc_score(labels, scores), a.repeat)
    rmia, rmia_mem = run(["--mode", "rmia", "--records", str(n), "--repeat", "3"])
    full, full_mem = run(["--mode", "full", "--records", str(n), "--references", str(a.references),
                          "--repeat", "1"])
    print(f"ROC + AUC on {n:,} scores (best of {a.repeat}):")
    print(f"  phiprobe Roc::new + auc            {roc['seconds'] * 1e3:8.2f} ms   AUC {roc['auc']:.15f}")
    print(f"  sklearn roc_curve + auc            {t_curve * 1e3:8.2f} ms   AUC {sk_auc:.15f}"
          f"   sklearn / phiprobe = {t_curve / roc['seconds']:.1f}x")
    print(f"  sklearn roc_auc_score              {t_score * 1e3:8.2f} ms   AUC {sk_auc2:.15f}"
          f"   sklearn / phiprobe = {t_score / roc['seconds']:.1f}x")
    print(f"  |AUC difference| = {abs(roc['auc'] - sk_auc2):.2e}; phiprobe process peak RSS "
          f"{roc_mem:.0f} MiB (with the synthetic audit it generates)")
    print(f"RMIA, {n:,} records x {n:,} population points: {rmia['seconds'] * 1e3:.1f} ms, "
          f"peak RSS {rmia_mem:.0f} MiB (a records x population f64 matrix would be "
          f"{8 * n * n / 2**30:.0f} GiB)")
    print(f"All {full['attacks']} attacks + metrics + {full['bootstrap']} bootstrap resamples each, "
          f"{n:,} records x {a.references} reference models: {full['seconds']:.2f} s, "
          f"peak RSS {full_mem:.0f} MiB (includes generating the synthetic audit)")


if __name__ == "__main__":
    main()
