#!/usr/bin/env python3
"""A tiny llama GGUF with a SentencePiece (llama-style) tokenizer, and the token ids llama.cpp and
sentencepiece give for a set of strings.

    $REFENV/bin/python tests/data/spm/make_fixture.py     (needs `pip install sentencepiece`)

The tokenizer is a SentencePiece BPE model with byte fallback trained on a small clinical-style corpus;
the weights are those of tests/data/models/tiny-llama (its Q/K rows permuted the way llama.cpp's
converter stores them), with the embedding and output head extended by random rows to the tokenizer's 600 tokens.
Writes tests/data/spm/tiny-llama-spm.gguf and expected.json.
"""
import io
import json
import os

import numpy as np
import sentencepiece as spm
from gguf import GGUFWriter
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(os.path.dirname(HERE), "models")

CORPUS = [
    "Patient Jane Doe, MRN 004-553-871, seen on 2019-03-14 for follow-up of type 2 diabetes.",
    "Encounter note: the patient reports chest pain radiating to the left arm; troponin negative.",
    "Discharge summary for John Smith (DOB 1957-11-02), admitted with community-acquired pneumonia.",
    "Phone 555-0142, email j.doe@example.org, ZIP 02139. Follow up in 3 weeks.",
    "Medications: metformin 500 mg twice daily, lisinopril 10 mg daily, atorvastatin 40 mg nightly.",
] * 20
TEXTS = [
    "Patient Jane Doe, MRN 004-553-871.",
    "the patient reports chest pain",
    "Résumé: tension 135/85 mmHg 😀",
    "  two leading spaces\nand a newline",
    "x",
    "unseen wörds zyxw",
]


def main():
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=buf, model_type="bpe",
                                   vocab_size=600, byte_fallback=True, character_coverage=1.0,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, hard_vocab_limit=False)
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    n = sp.get_piece_size()
    tokens, scores, types = [], [], []
    for i in range(n):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                     else 5 if sp.is_unused(i) else 1)

    w = load_file(os.path.join(MODELS, "tiny-llama/model-00001-of-00003.safetensors"))
    for f in ("model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"):
        w.update(load_file(os.path.join(MODELS, "tiny-llama", f)))
    cfg = json.load(open(os.path.join(MODELS, "tiny-llama/config.json")))
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def permute(x, h):
        return x.reshape(h, 2, x.shape[0] // h // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)

    out = os.path.join(HERE, "tiny-llama-spm.gguf")
    g = GGUFWriter(out, "llama")
    g.add_context_length(cfg["max_position_embeddings"])
    g.add_embedding_length(cfg["hidden_size"])
    g.add_block_count(cfg["num_hidden_layers"])
    g.add_feed_forward_length(cfg["intermediate_size"])
    g.add_head_count(heads)
    g.add_head_count_kv(kv)
    g.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    g.add_rope_freq_base(cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)))
    g.add_tokenizer_model("llama")
    g.add_token_list(tokens)
    g.add_token_scores(scores)
    g.add_token_types(types)
    g.add_bos_token_id(1)
    g.add_eos_token_id(2)
    g.add_unk_token_id(0)
    g.add_add_bos_token(True)
    g.add_add_eos_token(False)
    rng = np.random.default_rng(5)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        extra = 0.25 * rng.standard_normal((n - w[k].shape[0], w[k].shape[1]))
        w[k] = np.concatenate([w[k].astype(np.float32), extra.astype(np.float32)])
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    part = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
            "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
            "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for name in sorted(w):
        x = w[name].astype(np.float32)
        if name in names:
            g.add_tensor(names[name], x)
            continue
        _, _, i, rest = name.split(".", 3)
        mod = rest.rsplit(".", 1)[0]
        if mod == "self_attn.q_proj":
            x = permute(x, heads)
        elif mod == "self_attn.k_proj":
            x = permute(x, kv)
        g.add_tensor(f"blk.{i}.{part[mod]}.weight", np.ascontiguousarray(x))
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()

    from llama_cpp import Llama
    llm = Llama(model_path=out, vocab_only=True, verbose=False)
    cases = []
    for t in TEXTS:
        ids_cpp = llm.tokenize(t.encode(), add_bos=True, special=False)
        ids_sp = [1] + sp.encode(t)
        cases.append({"text": t, "llama_cpp_ids": ids_cpp, "sentencepiece_ids": ids_sp,
                      "decoded": sp.decode(sp.encode(t))})
    json.dump({"generator": "tests/data/spm/make_fixture.py", "cases": cases},
              open(os.path.join(HERE, "expected.json"), "w"), indent=1, ensure_ascii=False)
    print("wrote", out)


if __name__ == "__main__":
    main()
