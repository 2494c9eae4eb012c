#!/usr/bin/env python3
"""Training-step throughput, side by side in one run at one thread count: phiprobe (release binary,
`bench-train`) and PyTorch + transformers (LlamaForCausalLM with the same configuration, AdamW,
gradient-norm clipping, the same batch of random token sequences). Also prints phiprobe's DP-SGD
step cost relative to its plain step at the same batch.

    $REFENV/bin/python benches/compare_training.py [--preset tiny] [--threads 2] [--batch 16] [--tokens 128]

Needs the reference environment (../shared/tools/reference-env.sh) and `cargo build --release`.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = {  # vocab, hidden, layers, heads, intermediate — as src/train/llama.rs
    "micro": (512, 32, 2, 2, 88),
    "tiny": (2048, 128, 4, 4, 352),
    "small": (4096, 256, 6, 8, 704),
    "base": (8192, 512, 8, 8, 1376),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = subprocess.check_output(
        [os.path.join(ROOT, "target/release/phiprobe"), "bench-train", "--preset", args.preset,
         "--threads", str(args.threads), "--batch", str(args.batch), "--tokens", str(args.tokens),
         "--steps", str(args.steps), "--repeat", str(args.repeat)], text=True)
    ours = json.loads(out)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    v, d, layers, heads, inter = PRESETS[args.preset]
    cfg = LlamaConfig(vocab_size=v, hidden_size=d, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max(256, args.tokens),
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    ids = torch.randint(0, v, (args.batch, args.tokens + 1))
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, v), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        best = min(best, (time.perf_counter() - t0) / args.steps)
    tokens = args.batch * args.tokens
    torch_tps = tokens / best
    print(json.dumps({
        "preset": args.preset, "threads": args.threads, "batch": args.batch, "tokens": args.tokens,
        "phiprobe_tok_per_s": ours["plain_tok_per_s"], "torch_tok_per_s": torch_tps,
        "ratio_vs_torch": ours["plain_tok_per_s"] / torch_tps,
        "phiprobe_dp_overhead": ours["dp_overhead"], "torch": torch.__version__,
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
