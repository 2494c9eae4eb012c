#!/usr/bin/env python3
"""Builds the tiny model fixtures and their expected per-token scores with PyTorch + transformers.

Run from the repository root with the reference environment (../shared/tools/reference-env.sh, plus
`pip install peft`):

    $REFENV/bin/python tests/data/models/make_fixtures.py

Writes tests/data/models/{tiny-llama,tiny-llama-lora,tiny-qwen2,tiny-gpt2}/ and expected.json. The
models are random-initialised (with wide weights so the next-token distributions are far from uniform);
the expected values are what transformers computes for the saved weights, so CI needs no Python.
"""
import json
import math
import os
import shutil

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
from transformers import (AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast,
                          Qwen2Config)

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(1234)

CORPUS = [
    "Patient Jane Doe, MRN 004-553-871, seen on 2019-03-14 for follow-up of type 2 diabetes.",
    "Encounter note: the patient reports chest pain radiating to the left arm; troponin negative.",
    "Discharge summary for John Smith (DOB 1957-11-02), admitted with community-acquired pneumonia.",
    "Résumé: la patiente a été vue à l'hôpital Saint-Éloi; tension artérielle 135/85 mmHg.",
    "Phone 555-0142, email j.doe@example.org, ZIP 02139. Follow up in 3 weeks.",
    "Medications: metformin 500 mg twice daily, lisinopril 10 mg daily, atorvastatin 40 mg nightly.",
] * 8

TEXTS = [
    "Patient Jane Doe, MRN 004-553-871, seen on 2019-03-14.",
    "the patient reports chest pain",
    "Résumé: tension 135/85 mmHg 😀",
    "  leading spaces and digits 0123456789",
    "x",
    "Medications: metformin 500 mg twice daily, lisinopril 10 mg daily, atorvastatin 40 mg nightly. "
    "Discharge summary for John Smith (DOB 1957-11-02), admitted with pneumonia.",
]


def make_tokenizer(bos: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return tok


def widen(model):
    """Replaces the default (near-zero) initialisation with wide random weights."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p) if name.endswith("weight") else 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.25 * torch.randn_like(p) if p.dim() > 1 else 0.1 * torch.randn_like(p))


def save(model, tok: Tokenizer, name: str, dtype, shard: str | None = None):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    model = model.to(dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(out, safe_serialization=True, **kwargs)
    tok.save(os.path.join(out, "tokenizer.json"))
    # Expected values use the weights as stored (rounded to the stored dtype), computed in f32.
    return AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval(), out


def scores(model, tok: Tokenizer):
    out = []
    for text in TEXTS:
        ids = tok.encode(text).ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        var = (p * logp * logp).sum(-1) - mu * mu
        rows = []
        for t in range(1, len(ids)):
            rows.append([float(logp[t - 1, ids[t]]), float(mu[t - 1]), float(var[t - 1])])
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                 attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 pad_token_id=1, eos_token_id=None)
        out.append({"text": text, "ids": ids, "scores": rows, "greedy": gen[0, len(ids):].tolist()})
    return out


def main():
    expected = {}
    vocab = 320

    tok = make_tokenizer(bos=True)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      bos_token_id=0, eos_token_id=1)
    base = AutoModelForCausalLM.from_config(cfg)
    widen(base)
    model, path = save(base, tok, "tiny-llama", torch.float32, shard="200KB")
    expected["tiny-llama"] = scores(model, tok)

    # A LoRA adapter on the llama base (B is zero-initialised by PEFT; randomise it).
    from peft import LoraConfig, get_peft_model
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32),
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                           lora_dropout=0.0, bias="none"))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n:
                p.copy_(0.3 * torch.randn_like(p))
    lora_dir = os.path.join(HERE, "tiny-llama-lora")
    shutil.rmtree(lora_dir, ignore_errors=True)
    peft_model.save_pretrained(lora_dir, safe_serialization=True)
    expected["tiny-llama-lora"] = scores(peft_model.eval(), tok)

    tok = make_tokenizer(bos=False)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                      bos_token_id=0, eos_token_id=1)
    base = AutoModelForCausalLM.from_config(cfg)
    widen(base)
    model, _ = save(base, tok, "tiny-qwen2", torch.bfloat16)
    expected["tiny-qwen2"] = scores(model, tok)

    cfg = GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=256,
                     bos_token_id=0, eos_token_id=1)
    base = AutoModelForCausalLM.from_config(cfg)
    widen(base)
    model, _ = save(base, tok, "tiny-gpt2", torch.float16)
    expected["tiny-gpt2"] = scores(model, tok)

    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump({"generator": "tests/data/models/make_fixtures.py",
                   "torch": torch.__version__,
                   "transformers": __import__("transformers").__version__,
                   "models": expected}, f, indent=1)
    print("wrote", os.path.join(HERE, "expected.json"))


if __name__ == "__main__":
    main()
