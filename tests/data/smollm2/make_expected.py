#!/usr/bin/env python3
"""Expected token ids, per-token scores and greedy continuations of SmolLM2-135M-Instruct (Q4_1 GGUF)
under transformers' own GGUF loading (weights dequantised to f32) and llama.cpp's tokenizer.

    scripts/fetch-smollm2.sh && $REFENV/bin/python tests/data/smollm2/make_expected.py

Writes tests/data/smollm2/expected.json (committed; CI needs no Python).
"""
import json
import os
import subprocess

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

TOKENIZE = [
    "Hello, world!",
    "Patient Jane Doe, MRN 004-553-871, DOB 1957-11-02.",
    "Résumé: la patiente a été vue à l'hôpital Saint-Éloi; naïve café",
    "digits 0123456789 and 3.14159 and 1,000,000",
    "emoji 😀🏥💉 and CJK 病人",
    "   leading spaces\tand tabs\nnewline",
    " it's we'll they're I'M",
    "<|im_start|>user\nWhat is the dose?<|im_end|>",
]
SCORE = TOKENIZE[:6] + [
    "The patient is a 67-year-old man with a history of hypertension and type 2 diabetes mellitus who "
    "presents with three days of worsening shortness of breath.",
]
PROMPTS = ["The capital of France is", "Patient presents with chest pain and", "def fibonacci(n):"]


def main():
    gguf = subprocess.check_output([os.path.join(ROOT, "scripts/fetch-smollm2.sh")], text=True).strip()
    gguf = os.path.join(ROOT, gguf)
    d, f = os.path.dirname(gguf), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()

    llama_ids = {}
    try:
        from llama_cpp import Llama
        llm = Llama(model_path=gguf, n_ctx=256, vocab_only=True, verbose=False)
        for t in TOKENIZE:
            llama_ids[t] = llm.tokenize(t.encode(), add_bos=False, special=True)
    except ImportError:
        pass

    tokenization = []
    for t in TOKENIZE:
        ids = tok(t)["input_ids"]
        if t in llama_ids and llama_ids[t] != ids:
            print("transformers and llama.cpp disagree on", repr(t), ids, llama_ids[t])
        tokenization.append({"text": t, "ids": ids, "llama_cpp_ids": llama_ids.get(t)})

    scores = []
    for t in SCORE:
        ids = tok(t)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        var = (p * logp * logp).sum(-1) - mu * mu
        rows = [[float(logp[i - 1, ids[i]]), float(mu[i - 1]), float(var[i - 1])] for i in range(1, len(ids))]
        scores.append({"text": t, "ids": ids, "scores": rows})

    greedy = []
    for t in PROMPTS:
        ids = tok(t)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0)
        greedy.append({"text": t, "ids": ids, "continuation": out[0, len(ids):].tolist()})

    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump({"generator": "tests/data/smollm2/make_expected.py", "model": f,
                   "torch": torch.__version__, "transformers": __import__("transformers").__version__,
                   "tokenization": tokenization, "scores": scores, "greedy": greedy}, fh, indent=1, ensure_ascii=False)
    print("wrote", os.path.join(HERE, "expected.json"))


if __name__ == "__main__":
    main()
