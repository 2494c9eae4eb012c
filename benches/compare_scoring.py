#!/usr/bin/env python3
"""Teacher-forced scoring throughput, side by side in one run and at one thread count:
phiprobe (release binary, GGUF dequantised to f32), PyTorch + transformers (the same GGUF dequantised
to f32) and llama.cpp through llama-cpp-python (Q4_1 as stored, logits for every position).

    $REFENV/bin/python benches/compare_scoring.py [--threads 2] [--sequences 64] [--tokens 128]

Needs the reference environment (../shared/tools/reference-env.sh), `cargo build --release`, and
the SmolLM2 GGUF (scripts/fetch-smollm2.sh). Prints tok/s for each, the ratios, and phiprobe's
fraction of the f32 matmul roofline measured by phiprobe in the same run.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--skip", default="", help="comma list of tools to skip: torch,llamacpp")
    args = ap.parse_args()
    gguf = subprocess.check_output([os.path.join(ROOT, "scripts/fetch-smollm2.sh")], text=True).strip()
    gguf = os.path.join(ROOT, gguf)
    n, t, th = args.sequences, args.tokens, args.threads
    scored = n * (t - 1)
    results = {}

    out = subprocess.check_output([os.path.join(ROOT, "target/release/phiprobe"), "bench-score", "--model", gguf,
                                   "--threads", str(th), "--sequences", str(n), "--tokens", str(t)], text=True)
    ours = json.loads(out)
    results["phiprobe"] = ours["tok_per_s"]
    print(f"phiprobe: {ours['tok_per_s']:.1f} tok/s", file=sys.stderr)

    import random
    random.seed(7)
    seqs = [[random.randrange(49152) for _ in range(t)] for _ in range(n)]

    if "torch" not in args.skip:
        import torch
        from transformers import AutoModelForCausalLM
        torch.set_num_threads(th)
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                                     torch_dtype=torch.float32).eval()
        batch = 4096 // t
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            with torch.no_grad():
                for i in range(0, n, batch):
                    logits = model(torch.tensor(seqs[i:i + batch])).logits
                    lp = torch.log_softmax(logits[:, :-1].float(), -1)
                    _ = lp.gather(-1, torch.tensor(seqs[i:i + batch])[:, 1:, None])
            best = min(best, time.perf_counter() - t0)
        results["pytorch"] = scored / best
        print(f"pytorch: {results['pytorch']:.1f} tok/s", file=sys.stderr)
        del model

    if "llamacpp" not in args.skip:
        try:
            from llama_cpp import Llama
            llm = Llama(model_path=gguf, n_ctx=t, n_batch=t, n_threads=th, logits_all=True, verbose=False)
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                for s in seqs:
                    llm.reset()
                    llm.eval(s)
                    _ = llm.scores[:t]
                best = min(best, time.perf_counter() - t0)
            results["llama.cpp"] = scored / best
        except ImportError:
            print("llama-cpp-python not installed; skipped", file=sys.stderr)

    print(f"SmolLM2-135M, {n} sequences x {t} tokens, {th} threads, teacher-forced scoring of every position")
    for k, v in results.items():
        print(f"  {k:10s} {v:8.1f} tok/s")
    for k in ("pytorch", "llama.cpp"):
        if k in results:
            print(f"  phiprobe / {k}: {results['phiprobe'] / results[k]:.2f}x")
    print(f"  f32 matmul: {ours['matmul_gflops']:.1f} GFLOP/s; roofline {ours['roofline_tok_per_s']:.0f} tok/s; "
          f"phiprobe at {100 * ours['roofline_fraction']:.0f}% of it")


if __name__ == "__main__":
    main()
