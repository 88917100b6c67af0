"""Peer side of the quantize benchmark: the Python references quantizing SmolLM2-135M's Linear
weights in-process. Prints the seconds spent in the quantize calls only (imports and loading
excluded), so the ratio against wconv's whole command is conservative.

Usage: quantize_peers.py (bnb-nf4 | gguf-Q8_0 | gguf-Q4_0) HF_DIR THREADS
"""
import sys
import time

import numpy as np
from safetensors.numpy import load_file

kind, hf, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
weights = {k: v for k, v in load_file(f"{hf}/model.safetensors").items() if v.ndim == 2 and ".layers." in k}
if kind == "bnb-nf4":
    import torch
    import bitsandbytes.functional as F
    torch.set_num_threads(threads)
    tensors = [torch.from_numpy(v) for v in weights.values()]
    start = time.perf_counter()
    for t in tensors:
        F.quantize_4bit(t, blocksize=64, quant_type="nf4", compress_statistics=True)
    print(time.perf_counter() - start)
else:
    import gguf
    qtype = getattr(gguf.GGMLQuantizationType, kind.split("-")[1])
    start = time.perf_counter()
    for v in weights.values():
        gguf.quants.quantize(v, qtype)
    print(time.perf_counter() - start)
