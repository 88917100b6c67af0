#!/usr/bin/env python3
"""Writes testdata/golden/rope/rope_inv_freq.json: RoPE inverse frequencies (and cos/sin at a few
positions) exactly as transformers computes them, for the Swift RoPE tests.

Run from the repository root with a Python that has torch and transformers installed:
    python testdata/scripts/make_rope_goldens.py
Float32 values are stored as their IEEE-754 bit patterns (unsigned integers) so the Swift side
can compare bit for bit.
"""
import json
import struct
import sys

import numpy as np
import torch
import transformers
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

POSITIONS = [0, 1, 2, 7, 100, 511, 4095, 8191, 65535]

CASES = [
    # name, head_dim, theta, rope_parameters extras
    ("default-tiny-llama", 32, 10000.0, {"rope_type": "default"}),
    ("default-smollm2", 64, 100000.0, {"rope_type": "default"}),
    ("default-llama2", 128, 10000.0, {"rope_type": "default"}),
    ("default-llama3", 128, 500000.0, {"rope_type": "default"}),
    ("llama3-llama3.1-8b", 128, 500000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    ("llama3-llama3.2-1b", 64, 500000.0, {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    ("llama3-odd", 96, 10000.0, {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0,
                                 "high_freq_factor": 8.0, "original_max_position_embeddings": 512}),
    ("linear-2", 128, 10000.0, {"rope_type": "linear", "factor": 2.0}),
]


def bits(t):
    a = t.detach().to(torch.float32).contiguous().numpy().astype("<f4")
    return [int(x) for x in a.view("<u4").reshape(-1)]


def main():
    out = {
        "generator": "testdata/scripts/make_rope_goldens.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "positions": POSITIONS,
        "cases": [],
    }
    for name, head_dim, theta, extra in CASES:
        rope = {"rope_theta": theta, **extra}
        heads = 4
        config = LlamaConfig(hidden_size=head_dim * heads, num_attention_heads=heads, num_key_value_heads=heads,
                             head_dim=head_dim, intermediate_size=8, num_hidden_layers=1, vocab_size=8,
                             max_position_embeddings=131072, rope_parameters=rope)
        kind = extra["rope_type"]
        # The unscaled frequencies too: torch's float32 pow (vectorized, within 1 ulp) is not
        # correctly rounded, so the Swift test checks the scaling arithmetic on these exact inputs.
        default_inv_freq, _ = LlamaRotaryEmbedding.compute_default_rope_parameters(config)
        if kind == "default":
            inv_freq, scaling = default_inv_freq, 1.0
        else:
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[kind](config, None)
        assert scaling == 1.0
        # cos/sin through the module itself, so the golden includes its float32 products.
        emb = LlamaRotaryEmbedding(config)
        x = torch.zeros(1, 1, len(POSITIONS), head_dim, dtype=torch.float32)
        cos, sin = emb(x, torch.tensor([POSITIONS]))
        assert torch.equal(emb.inv_freq, inv_freq)
        out["cases"].append({
            "name": name,
            "head_dim": head_dim,
            "rope_parameters": rope,
            "default_inv_freq_bits": bits(default_inv_freq),
            "inv_freq_bits": bits(inv_freq),
            "cos_bits": bits(cos[0, :, : head_dim // 2]),
            "sin_bits": bits(sin[0, :, : head_dim // 2]),
        })
    path = sys.argv[1] if len(sys.argv) > 1 else "testdata/golden/rope/rope_inv_freq.json"
    with open(path, "w") as f:
        json.dump(out, f, separators=(", ", ": "))
        f.write("\n")


if __name__ == "__main__":
    main()
