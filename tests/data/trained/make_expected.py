#!/usr/bin/env python3
"""Expected per-token log-probabilities of a checkpoint written by `phiprobe train`, computed by
PyTorch + transformers (AutoModelForCausalLM / AutoTokenizer), so CI needs no Python.

Run from the repository root with the reference environment (../shared/tools/reference-env.sh):

    cargo run --release -- -q data synth --patients 60 --seed 11 --out /tmp/phiprobe-fixture-data --format csv
    cargo run --release -- -q train --data /tmp/phiprobe-fixture-data/synthetic-ehr.toml \
        --out tests/data/trained/micro --preset micro --epochs 30 --seed 5
    $REFENV/bin/python tests/data/trained/make_expected.py

Writes tests/data/trained/expected.json: for each text, the token ids (BOS first) and log p(token_t |
tokens_<t) for t ≥ 1, in float64 from the float32 model.
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "micro")

TEXTS = [
    "Encounter 2016-12-04 - follow-up of type 2 diabetes; blood pressure 128 over 81.",
    "Identity verified; social security number 123-45-6789 on file.",
    "Patient asks to be called back at (555) 201-3344.",
    "x",
    "Résumé ✓ 😀 0123456789",
]


def main():
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32)
    model.eval()
    out = {"model": "micro", "transformers": __import__("transformers").__version__, "texts": []}
    for text in TEXTS:
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        scores = [logp[t - 1, ids[t]].item() for t in range(1, len(ids))]
        out["texts"].append({"text": text, "ids": ids, "logprobs": scores})
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
