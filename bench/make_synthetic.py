"""Writes a synthetic LLaMA checkpoint of about 2.3 GB (f32, random weights) for the memory
benchmark: 10 layers, hidden 2048, GQA 32/4 heads, vocab 32000, with the tiny SentencePiece
tokenizer of testdata (the vocabulary is padded to 32000 as llama.cpp's converter pads it)."""
import json
import pathlib
import shutil
import sys

import numpy as np
from safetensors.numpy import save_file

out = pathlib.Path(sys.argv[1])
if (out / "config.json").exists():
    sys.exit(0)
root = pathlib.Path(__file__).resolve().parent.parent
tmp = out.with_suffix(".tmp")
shutil.rmtree(tmp, ignore_errors=True)
tmp.mkdir(parents=True)
hidden, ff, layers, heads, kv, vocab = 2048, 5632, 10, 32, 4, 32000
hd = hidden // heads
config = json.loads((root / "testdata" / "tiny-llama-spm" / "config.json").read_text())
config.update(hidden_size=hidden, intermediate_size=ff, num_hidden_layers=layers, num_attention_heads=heads,
              num_key_value_heads=kv, head_dim=hd, vocab_size=vocab, dtype="float32", max_position_embeddings=2048)
(tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
for name in ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(root / "testdata" / "tiny-llama-spm" / name, tmp / name)
rng = np.random.default_rng(0)
def w(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02)
shards = {}
shards["model.embed_tokens.weight"] = w(vocab, hidden)
shards["lm_head.weight"] = w(vocab, hidden)
shards["model.norm.weight"] = np.ones(hidden, np.float32)
index = {}
parts = [dict(shards)]
for i in range(layers):
    p = f"model.layers.{i}."
    parts.append({
        p + "input_layernorm.weight": np.ones(hidden, np.float32),
        p + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
        p + "self_attn.q_proj.weight": w(heads * hd, hidden), p + "self_attn.k_proj.weight": w(kv * hd, hidden),
        p + "self_attn.v_proj.weight": w(kv * hd, hidden), p + "self_attn.o_proj.weight": w(hidden, heads * hd),
        p + "mlp.gate_proj.weight": w(ff, hidden), p + "mlp.up_proj.weight": w(ff, hidden), p + "mlp.down_proj.weight": w(hidden, ff),
    })
n = len(parts)
total = 0
for k, part in enumerate(parts):
    name = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
    save_file(part, str(tmp / name), metadata={"format": "pt"})
    for t, a in part.items():
        index[t] = name
        total += a.nbytes
(tmp / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": index}, indent=2, sort_keys=True) + "\n")
tmp.rename(out)
