#!/usr/bin/env python3
"""Batched greedy generation throughput with a KV cache: phiprobe vs transformers `generate`, one run,
same threads. 8 prompts x 64 new tokens on SmolLM2-135M (GGUF dequantised to f32 in both).

    $REFENV/bin/python benches/compare_generation.py [--threads 2]
"""
import argparse
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new", type=int, default=64)
    args = ap.parse_args()
    gguf = os.path.join(ROOT, subprocess.check_output([os.path.join(ROOT, "scripts/fetch-smollm2.sh")], text=True).strip())
    prompts = [f"Patient {i} presents with" for i in range(8)]
    exe = os.path.join(ROOT, "target/release/phiprobe")
    base = [exe, "generate", "--model", gguf, "--threads", str(args.threads), "--ignore-eos"]
    for p in prompts:
        base += ["--prompt", p]

    def run(n):
        t0 = time.perf_counter()
        subprocess.run(base + ["--max-new-tokens", str(n)], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    # Subtract a one-token run so model loading and the prompt pass are not counted.
    ours = len(prompts) * (args.new - 1) / (run(args.new) - run(1))

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(args.threads)
    d, f = os.path.dirname(gguf), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    enc = tok(prompts, return_tensors="pt", padding=True)

    def gen(n):
        t0 = time.perf_counter()
        with torch.no_grad():
            model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
        return time.perf_counter() - t0

    gen(2)
    theirs = len(prompts) * (args.new - 1) / (gen(args.new) - gen(1))
    print(f"batched greedy generation, 8 prompts x {args.new} tokens, {args.threads} threads:")
    print(f"  phiprobe {ours:7.1f} tok/s\n  pytorch  {theirs:7.1f} tok/s\n  phiprobe / pytorch: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
