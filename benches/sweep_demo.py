#!/usr/bin/env python3
"""The issue-9 performance check: a 4-setting DP sweep on the demo's training data (200 synthetic
patients, seed 7, half members), timed end to end and broken down per setting (training, audit)
and for the comparison, against the 15-minute budget on 2 cores, in one run.

    python3 benches/sweep_demo.py [--grid 'noise=0,0.5,1,2;clip=1;epochs=4'] [--threads 2] [--out /tmp/sweep-bench]

Needs `cargo build --release`; no reference environment (the issue names no reference tool for
sweeps: the ratio printed is measured time / budget).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "phiprobe")
BUDGET_S = 15 * 60


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", default="noise=0,0.5,1,2;clip=1;epochs=4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/sweep-bench")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    shutil.rmtree(a.out, ignore_errors=True)
    data = os.path.join(a.out, "data")
    subprocess.run([BIN, "-q", "data", "synth", "--patients", "200", "--seed", "7",
                    "--format", "csv", "--member-fraction", "0.5", "--out", data], check=True)
    card = os.path.join(data, "synthetic-ehr.toml")
    t0 = time.time()
    subprocess.run([BIN, "sweep", "--data", card, "--grid", a.grid, "--threads", str(a.threads),
                    "--out", os.path.join(a.out, "sweep")], check=True)
    total = time.time() - t0
    sweep = json.load(open(os.path.join(a.out, "sweep", "sweep.json")))
    train = audit = 0.0
    print(f"{'setting':<30} {'steps':>6} {'train s':>9} {'audit s':>9}")
    for label, folder, _ in sweep["settings"]:
        t = json.load(open(os.path.join(a.out, "sweep", "settings", folder, "timing.json")))
        train += t["train_seconds"]
        audit += t["audit_seconds"]
        print(f"{label:<30} {t['steps']:>6} {t['train_seconds']:>9.1f} {t['audit_seconds']:>9.1f}")
    rest = total - train - audit
    print(f"{'total':<30} {'':>6} {train:>9.1f} {audit:>9.1f}")
    print(f"comparison, start-up and bookkeeping: {rest:.1f} s")
    print(f"sweep wall time {total:.1f} s = {total / 60:.2f} min; budget 15 min; ratio {total / BUDGET_S:.2f}")


if __name__ == "__main__":
    main()
