#!/usr/bin/env python3
"""Known-answer fixtures for GGUF block dequantisation, from gguf-py (llama.cpp's own Python package).

    $REFENV/bin/python tests/data/gguf/make_quant_fixtures.py

For each block type: two blocks of random bytes whose f16/f32 scale fields are overwritten with sane
values (random bytes could be NaN), and the f32 values gguf-py's dequantize() gives for them.
Writes tests/data/gguf/quants.json.
"""
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(11)

# (type, block elements, block bytes, [(offset, kind)] of scale fields)
TYPES = [
    (T.Q4_0, 32, 18, [(0, "f16")]),
    (T.Q4_1, 32, 20, [(0, "f16"), (2, "f16")]),
    (T.Q5_0, 32, 22, [(0, "f16")]),
    (T.Q5_1, 32, 24, [(0, "f16"), (2, "f16")]),
    (T.Q8_0, 32, 34, [(0, "f16")]),
    (T.Q2_K, 256, 84, [(80, "f16"), (82, "f16")]),
    (T.Q3_K, 256, 110, [(108, "f16")]),
    (T.Q4_K, 256, 144, [(0, "f16"), (2, "f16")]),
    (T.Q5_K, 256, 176, [(0, "f16"), (2, "f16")]),
    (T.Q6_K, 256, 210, [(208, "f16")]),
]


def main():
    out = []
    for ty, n, size, scales in TYPES:
        blocks = bytearray(rng.integers(0, 256, size=2 * size, dtype=np.uint8).tobytes())
        for b in range(2):
            for off, kind in scales:
                v = np.float16(rng.uniform(0.01, 0.5) * (1 if rng.random() < 0.8 else -1))
                blocks[b * size + off:b * size + off + 2] = v.tobytes()
        raw = np.frombuffer(bytes(blocks), dtype=np.uint8).reshape(1, 2 * size)
        values = dequantize(raw, ty).reshape(-1)
        assert values.shape[0] == 2 * n and np.isfinite(values).all()
        out.append({"type": ty.name, "id": int(ty.value), "elements": 2 * n, "hex": bytes(blocks).hex(),
                    "values": [float(x) for x in values]})
    with open(os.path.join(HERE, "quants.json"), "w") as f:
        json.dump({"generator": "tests/data/gguf/make_quant_fixtures.py", "blocks": out}, f)
    print("wrote", os.path.join(HERE, "quants.json"))


if __name__ == "__main__":
    main()
