#!/usr/bin/env python3
"""phiprobe's re-identification statistics side by side with pyCANON and a bare pandas group-by.

One run measures, on the same data and the same quasi-identifiers:
  * phiprobe: `phiprobe risk ... --timings` (the analysis time it reports: encoding the
    columns, equivalence classes, prosecutor risk, Zayatz/Pitman/SNB/Dankar, l-diversity,
    t-closeness, δ-disclosure; the Safe Harbor scan is off) and its process peak RSS;
  * pyCANON (PyPI): k_anonymity + l_diversity on an in-memory DataFrame;
  * pandas: df.groupby(qis).size() on an in-memory DataFrame;
and prints the ratios. Each tool runs in its own process so that peak memory (ru_maxrss, from
wait4) is its own; this parent process never imports pandas or numpy.

Data: tests/data/adult.csv (8 QIs, sensitive salary-class) and synthetic tables of 100 k, 1 M
and 10 M records x 6 QIs (+ one sensitive attribute), written as Parquet.

Usage (from the repository root, after `cargo build --release`):
  python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install pycanon pandas numpy pyarrow
  /tmp/benchenv/bin/python benches/compare_reid.py [--sizes 100000,1000000,10000000]
      [--repeat 3] [--pycanon-max-rows 1000000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ADULT_QIS = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation"]
ADULT_SA = "salary-class"
SYN_QIS = ["age", "sex", "zip3", "race", "admit_year", "marital"]
SYN_SA = "dx"


def load(path, sep):
    import pandas as pd

    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, sep=sep)


def worker(args):
    """Runs one measurement in this process and prints its timing as JSON."""
    df = load(args.data, args.sep)
    qis = args.qi.split(",")
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        if args.worker == "pandas":
            df.groupby(qis, observed=True).size()
        elif args.worker == "pycanon-k":
            from pycanon import anonymity

            anonymity.k_anonymity(df, qis)
        elif args.worker == "pycanon-l":
            from pycanon import anonymity

            anonymity.l_diversity(df, qis, [args.sa])
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"seconds": best}))


def run_child(cmd, timeout):
    """Runs cmd; returns (stdout, stderr, wall seconds, peak RSS MiB)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(p.pid, 0)
        except KeyboardInterrupt:
            p.kill()
            raise
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed: {e[-2000:]}")
    return o, e, wall, usage.ru_maxrss / 1024.0


def measure_python(kind, data, sep, qis, sa, repeat, timeout):
    cmd = [sys.executable, __file__, "--worker", kind, "--data", data, "--sep", sep, "--qi", ",".join(qis), "--sa", sa, "--repeat", str(repeat)]
    o, _, _, rss = run_child(cmd, timeout)
    return json.loads(o.strip().splitlines()[-1])["seconds"], rss


def measure_phiprobe(binary, data, sep, qis, sa, repeat, outdir):
    best, rss_max, wall_best = float("inf"), 0.0, float("inf")
    for _ in range(repeat):
        cmd = [binary, "--quiet", "risk", "--data", data, "--qi", ",".join(qis), "--sensitive", sa, "--no-safe-harbor", "--timings", "--format", "json", "--out", outdir, "--sampling-fraction", "0.01"]
        if sep != ",":
            cmd += ["--separator", sep]
        _, e, wall, rss = run_child(cmd, 3600)
        t = json.loads([l for l in e.splitlines() if l.startswith("{")][-1])
        best = min(best, t["analyze_s"])
        wall_best = min(wall_best, wall)
        rss_max = max(rss_max, rss)
    return best, wall_best, rss_max


def synthetic(path, rows, seed=1):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    zip3 = np.array([f"{z:03d}" for z in range(100, 1000)])
    df = pd.DataFrame(
        {
            "age": rng.integers(0, 100, rows),
            "sex": rng.choice(np.array(["F", "M"]), rows),
            "zip3": zip3[rng.integers(0, len(zip3), rows)],
            "race": rng.integers(0, 6, rows),
            "admit_year": rng.integers(2015, 2025, rows),
            "marital": rng.integers(0, 5, rows),
            "dx": rng.integers(0, 200, rows),
        }
    )
    df.to_parquet(path, index=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--data")
    ap.add_argument("--sep", default=",")
    ap.add_argument("--qi")
    ap.add_argument("--sa")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--phiprobe", default="target/release/phiprobe")
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--pycanon-max-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.worker == "synthetic":
        return synthetic(args.data, int(args.qi))
    if args.worker:
        return worker(args)

    tmp = tempfile.mkdtemp(prefix="phiprobe-bench-")
    cases = [("adult (30,162 x 8 QIs)", "tests/data/adult.csv", ";", ADULT_QIS, ADULT_SA, 30162)]
    for n in [int(s) for s in args.sizes.split(",") if s]:
        p = os.path.join(tmp, f"syn_{n}.parquet")
        # In a child, so that this process stays small: children inherit nothing large.
        subprocess.run([sys.executable, __file__, "--worker", "synthetic", "--data", p, "--qi", str(n)], check=True)
        cases.append((f"synthetic ({n:,} x 6 QIs)", p, ",", SYN_QIS, SYN_SA, n))

    print(f"| data | phiprobe full statistics (s) | phiprobe process wall (s) / peak RSS (MiB) | pandas group-by (s) / RSS | pyCANON k (s) | pyCANON l (s) / RSS | pyCANON (k+l) / phiprobe | phiprobe / pandas |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path, sep, qis, sa, rows in cases:
        ours, wall, rss = measure_phiprobe(args.phiprobe, path, sep, qis, sa, args.repeat, os.path.join(tmp, "run"))
        pd_s, pd_rss = measure_python("pandas", path, sep, qis, sa, args.repeat, 3600)
        if rows <= args.pycanon_max_rows:
            k_s, _ = measure_python("pycanon-k", path, sep, qis, sa, 1, 3600)
            l_s, l_rss = measure_python("pycanon-l", path, sep, qis, sa, 1, 3600)
            canon = f"{k_s:.3f} | {l_s:.3f} / {l_rss:.0f}"
            ratio = f"{(k_s + l_s) / ours:.1f}x"
        else:
            canon, ratio = "skipped | skipped", "n/a"
        print(f"| {name} | {ours:.4f} | {wall:.3f} / {rss:.0f} | {pd_s:.4f} / {pd_rss:.0f} | {canon} | {ratio} | {ours / pd_s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
