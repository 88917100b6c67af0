#!/usr/bin/env python3
"""Writes the goldens for wconv's general.* metadata (testdata/golden/metadata/).

Everything here is produced by the reference code, never typed by hand:

* convert/<case>.json: for a synthetic model directory (config.json, optional README.md model card,
  optional generation_config.json, a directory name, a list of output tensors), the general.* KV
  list that llama.cpp's converter writes. The script runs the converter's own
  `ModelBase.prepare_metadata` (conversion/base.py) on a stand-in object, with the gguf-py that
  llama.cpp vendors, then packs every KV with `GGUFWriter._pack_val` and decodes the bytes, so
  types and float32 values are exactly what lands in the file. Errors the converter would raise
  are recorded as "error".
* model_ids.json: `Metadata.get_model_id_components` and `Metadata.id_to_title` over many ids.
* size_labels.json: `gguf.utility.model_weight_count_rounded_notation` and `size_label`.
* parameter_counts.json: `GGUFWriter.get_total_parameter_count` over tensor lists.
* front_matter.json: `Metadata.load_model_card` (PyYAML) over README.md texts.
* file_names.json: `gguf.utility.naming_convention` and `fill_templated_filename`.

Usage:
    python make_metadata_goldens.py --llama-cpp LLAMA_CPP_DIR [--out testdata/golden/metadata]

LLAMA_CPP_DIR is vendor/llama.cpp of the llama-cpp-python 0.3.36 sdist
(`pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36`). The converter imports
torch, transformers, numpy and PyYAML; the goldens were made with PyYAML 6.0.4.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import struct
import sys
import tempfile
from pathlib import Path


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--llama-cpp", required=True, type=Path, help="vendor/llama.cpp of llama-cpp-python 0.3.36")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "golden" / "metadata")
    return p.parse_args()


ARGS = parse_args()
# The converter puts its own gguf-py first on sys.path (unless NO_LOCAL_GGUF is set); do the same,
# because the vendored copy differs from PyPI gguf 0.19.0 (repetition_penalty fallback).
sys.path.insert(0, str(ARGS.llama_cpp / "gguf-py"))
sys.path.insert(0, str(ARGS.llama_cpp))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
import gguf  # noqa: E402
from gguf.constants import GGUFValueType  # noqa: E402
from conversion.base import ModelBase  # noqa: E402

assert Path(gguf.__file__).resolve().is_relative_to(ARGS.llama_cpp.resolve()), gguf.__file__

import logging  # noqa: E402
logging.disable(logging.CRITICAL)


# ---------------------------------------------------------------------------------------------
# Encoding of values for the JSON goldens

def f32_json(x: float):
    """A float32 value as JSON: the exact double of the float32 (repr round-trips), or a string."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def decode_packed(buf: bytes):
    """Decodes one `_pack_val(add_vtype=True)` result into (type name, element type, value)."""
    pos = 0

    def take(fmt):
        nonlocal pos
        (v,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v

    def scalar(vtype):
        nonlocal pos
        if vtype == GGUFValueType.STRING:
            n = take("Q")
            s = buf[pos:pos + n].decode("utf-8")
            pos += n
            return s
        fmt = {GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i", GGUFValueType.FLOAT32: "f",
               GGUFValueType.BOOL: "?", GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b",
               GGUFValueType.UINT16: "H", GGUFValueType.INT16: "h", GGUFValueType.UINT64: "Q",
               GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d"}[vtype]
        v = take(fmt)
        return f32_json(v) if vtype == GGUFValueType.FLOAT32 else v

    vtype = GGUFValueType(take("I"))
    if vtype == GGUFValueType.ARRAY:
        etype = GGUFValueType(take("I"))
        n = take("Q")
        if etype == GGUFValueType.ARRAY:
            raise ValueError("nested arrays are not expected in general.* metadata")
        value = [scalar(etype) for _ in range(n)]
        assert pos == len(buf)
        return vtype.name, etype.name, value
    value = scalar(vtype)
    assert pos == len(buf)
    return vtype.name, None, value


def dump_kv(writer) -> list[dict]:
    out = []
    for key, v in writer.kv_data[0].items():
        packed = writer._pack_val(v.value, v.type, add_vtype=True, sub_type=v.sub_type)
        vtype, etype, value = decode_packed(packed)
        entry = {"key": key, "type": vtype}
        if etype is not None:
            entry["element_type"] = etype
        entry["value"] = value
        out.append(entry)
    return out


def typed(v):
    """PyYAML's Python value as typed JSON, so int/float/str/bool/date stay distinct."""
    if v is None:
        return {"null": None}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, (datetime.date, datetime.datetime)):
        return {"timestamp": str(v)}
    if isinstance(v, list):
        return {"seq": [typed(x) for x in v]}
    if isinstance(v, dict):
        return {"map": [[typed(k), typed(x)] for k, x in v.items()]}
    raise TypeError(type(v))


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".split("\n")[0][:200]


# ---------------------------------------------------------------------------------------------
# Synthetic tensor lists (GGUF names, numpy-order shapes), as the converter adds them

def llama_tensors(vocab, hidden, layers, ff, heads, kv_heads, tied=False, head_dim=None):
    hd = head_dim or hidden // heads
    t = [("token_embd.weight", [vocab, hidden])]
    for i in range(layers):
        t += [
            (f"blk.{i}.attn_norm.weight", [hidden]),
            (f"blk.{i}.attn_q.weight", [heads * hd, hidden]),
            (f"blk.{i}.attn_k.weight", [kv_heads * hd, hidden]),
            (f"blk.{i}.attn_v.weight", [kv_heads * hd, hidden]),
            (f"blk.{i}.attn_output.weight", [hidden, heads * hd]),
            (f"blk.{i}.ffn_norm.weight", [hidden]),
            (f"blk.{i}.ffn_gate.weight", [ff, hidden]),
            (f"blk.{i}.ffn_up.weight", [ff, hidden]),
            (f"blk.{i}.ffn_down.weight", [hidden, ff]),
        ]
    t.append(("output_norm.weight", [hidden]))
    if not tied:
        t.append(("output.weight", [vocab, hidden]))
    return t


def moe_tensors(vocab, hidden, layers, ff, heads, kv_heads, experts, bias=False):
    hd = hidden // heads
    t = [("token_embd.weight", [vocab, hidden])]
    for i in range(layers):
        t += [
            (f"blk.{i}.attn_norm.weight", [hidden]),
            (f"blk.{i}.attn_q.weight", [hidden, hidden]),
            (f"blk.{i}.attn_k.weight", [kv_heads * hd, hidden]),
            (f"blk.{i}.attn_v.weight", [kv_heads * hd, hidden]),
            (f"blk.{i}.attn_output.weight", [hidden, hidden]),
            (f"blk.{i}.ffn_norm.weight", [hidden]),
            (f"blk.{i}.ffn_gate_inp.weight", [experts, hidden]),
            (f"blk.{i}.ffn_gate_exps.weight", [experts, ff, hidden]),
            (f"blk.{i}.ffn_up_exps.weight", [experts, ff, hidden]),
            (f"blk.{i}.ffn_down_exps.weight", [experts, hidden, ff]),
        ]
        if bias:
            t.append((f"blk.{i}.ffn_down_exps.bias", [experts, hidden]))
    t += [("output_norm.weight", [hidden]), ("output.weight", [vocab, hidden])]
    return t


def lora_tensors(hidden, layers, rank):
    t = []
    for i in range(layers):
        for proj, out in (("attn_q", hidden), ("attn_v", hidden // 4)):
            t.append((f"blk.{i}.{proj}.weight.lora_a", [rank, hidden]))
            t.append((f"blk.{i}.{proj}.weight.lora_b", [out, rank]))
    return t


TINY = llama_tensors(32, 16, 2, 48, 4, 2)
TINY_SPM = llama_tensors(128, 64, 2, 128, 4, 2)
SMOL_135M = llama_tensors(49152, 576, 30, 1536, 9, 3, tied=True)
MISTRAL_7B = llama_tensors(32000, 4096, 32, 14336, 32, 8)
LLAMA31_8B = llama_tensors(128256, 4096, 32, 14336, 32, 8)
LLAMA2_13B = llama_tensors(32000, 5120, 40, 13824, 40, 40)
LLAMA_7B = llama_tensors(32000, 4096, 32, 11008, 32, 32)
YI_6B = llama_tensors(64000, 4096, 32, 11008, 32, 4)
MIXTRAL = moe_tensors(32000, 4096, 32, 14336, 32, 8, 8)
TINY_MOE = moe_tensors(64, 32, 2, 64, 4, 2, 4)


def llama_config(**extra):
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 16,
        "intermediate_size": 48,
        "max_position_embeddings": 128,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "vocab_size": 32,
    }
    cfg.update(extra)
    return json.dumps(cfg, indent=2) + "\n"


def gen_config(**values):
    base = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2}
    base.update(values)
    return json.dumps(base, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# Model cards

CARD_MISTRAL = """---
license: apache-2.0
pipeline_tag: text-generation
tags:
- finetuned
inference: true
widget:
- messages:
  - role: user
    content: What is your favorite condiment?
extra_gated_description: If you want to learn more about how we process your personal data, please read
  our <a href="https://mistral.ai/terms/">Privacy Policy</a>.
---

# Model Card for Mistral-7B-Instruct-v0.2

Some text: with colons.
"""

CARD_SMOL = """---
library_name: transformers
license: apache-2.0
language:
- en
pipeline_tag: text-generation
tags:
- safetensors
- onnx
- transformers.js
base_model:
- HuggingFaceTB/SmolLM2-135M
---


# SmolLM2

![image/png](https://cdn-uploads.huggingface.co/production/uploads/61c141342aac764ce1654e43/y45hIMNREW7w_XpHYB_0q.png)
"""

CARD_LLAMA31 = """---
language:
- en
- de
- fr
- it
- pt
- hi
- es
- th
library_name: transformers
license: llama3.1
tags:
- facebook
- meta
- pytorch
- llama
- llama-3
extra_gated_prompt: "### LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\\nLlama 3.1 Version\\
  \\ Release Date: July 23, 2024\\n\\\"Agreement\\\" means the terms and conditions for\\
  \\ use, reproduction, distribution and modification of the Llama Materials set forth\\
  \\ herein."
extra_gated_fields:
  First Name: text
  Last Name: text
  Date of birth: date_picker
  Country: country
  Affiliation: text
  Job title:
    type: select
    options:
    - Student
    - Research Graduate
    - AI researcher
    - Other
  geo: ip_location
  By clicking Submit below I accept the terms of the license and acknowledge that the information I provide will be collected stored processed and shared in accordance with the Meta Privacy Policy: checkbox
extra_gated_description: The information you provide will be collected, stored, processed
  and shared in accordance with the [Meta Privacy Policy](https://www.facebook.com/privacy/policy/).
extra_gated_button_content: Submit
---

## Model Information
"""

CARD_VICUNA = """---
inference: false
license: llama2
---

# Vicuna Model Card
"""

CARD_GUANACO = """---
license: other
datasets:
- timdettmers/openassistant-guanaco
---

<!-- header start -->
# Tim Dettmers' Guanaco 7B fp16 HF
"""

CARD_YI = """---
license: other
license_name: yi-license
license_link: LICENSE
widget:
  - example_title: "Yi-34B-Chat"
    text: "hi"
    output:
      text: " Hello! How can I assist you today?"
  - example_title: "Yi-34B"
    text: "There's a place where time stands still. A place of breath taking wonder, but also"
    output:
      text: " an eerie sense that something is just not right…
        Between the two worlds lies The Forgotten Lands.
        "
pipeline_tag: text-generation
---

<div align="center">
"""

CARD_MERGE = """---
license: apache-2.0
tags:
- merge
- "7b"
base_model:
  - mistralai/Mistral-7B-Instruct-v0.2
  - https://huggingface.co/teknium/OpenHermes-2.5-Mistral-7B
  - https://example.com/some/model
  - name: Custom Base
    organization: Someone
    version: v2
    repo_url: https://example.org/custom
  - Intel/neural-chat-7b-v3-3
datasets: [HuggingFaceH4/ultrachat_200k, 'https://huggingface.co/datasets/allenai/c4', "https://huggingface.co/Open-Orca/SlimOrca"]
language: en
---
"""

CARD_BLOKE = """---
base_model: mistralai/Mistral-7B-Instruct-v0.2
inference: false
license: apache-2.0
model_creator: Mistral AI_
model_name: Mistral 7B Instruct v0.2
model_type: mistral
pipeline_tag: text-generation
prompt_template: '<s>[INST] {prompt} [/INST]

  '
quantized_by: TheBloke
tags:
- finetuned
---
"""

CARD_DIRECT = """---
# llama.cpp's own model card keys
name: Direct Name
author: Some Author
version: v1.5
organization: Some Org
description: |
  A model described
  over two lines.
finetune: Chat
basename: direct
size_label: 3x1B
url: https://example.com/paper
doi: 10.1234/abcd
uuid: 7b7b7b7b-0000-1111-2222-333333333333
repo_url: https://example.com/repo
license_name: custom  # trailing comment
license_link: https://example.com/LICENSE
tags: [one, two, "three four"]
pipeline_tag: text-generation
languages:
  - en
  - no
language: fr
---
"""

CARD_LICENSE_LIST = """---
license:
- mit
- apache-2.0
tags: []
language: []
---
"""

CARD_NULLS = """---
base_model:
datasets: ~
license: null
tags:
name:
---
"""

CARD_INT_TAGS = """---
tags:
- 2024
- 7
---
"""

CARD_MIXED_TAGS = """---
tags:
- alpha
- 7
---
"""

CARD_FLOAT_VERSION = """---
version: 1.0
---
"""

CARD_FALSY_VERSION = """---
version: 0
license: ''
tags:
- yes
- No
---
"""

CARD_NOT_MAPPING = """---
- just
- a list
---
"""

CARD_NO_FRONT_MATTER = """# Just a title

license: mit
"""

CARD_CRLF = "---\r\nlicense: mit\r\ntags:\r\n\t- crlf\r\n---\r\n# body\r\n"

CARD_BAD_YAML = """---
tags: [unclosed, list
---
"""

CARD_DATASET_DICT = """---
datasets:
- name: My Data
  url: https://example.com/data
  doi: 10.1/2
- 42
base_model: 12
---
"""


# ---------------------------------------------------------------------------------------------
# Directory cases

def case(case_id, directory_name, tensors, config=None, card=None, generation=None, outtype="f16",
         model_name=None, metadata_override=None):
    files = {"config.json": config if config is not None else llama_config()}
    if card is not None:
        files["README.md"] = card
    if generation is not None:
        files["generation_config.json"] = generation
    return {
        "id": case_id,
        "directory_name": directory_name,
        "files": files,
        "tensors": tensors,
        "outtype": outtype,
        "model_name": model_name,
        "metadata_override": metadata_override,
    }


CASES = [
    case("tiny-llama", "tiny-llama", TINY),
    case("tiny-llama-spm", "tiny-llama-spm", TINY_SPM,
         generation=gen_config(output_attentions=False, use_cache=True)),
    case("tiny-llama-bf16", "tiny-llama", TINY, outtype="bf16"),
    case("tiny-llama-q8_0", "tiny-llama", TINY, outtype="q8_0"),
    case("mistral-7b-instruct", "Mistral-7B-Instruct-v0.2", MISTRAL_7B, card=CARD_MISTRAL,
         generation=gen_config()),
    case("mistral-7b-instruct-tiny", "Mistral-7B-Instruct-v0.2", TINY),
    case("smollm2-135m-instruct", "SmolLM2-135M-Instruct", SMOL_135M, card=CARD_SMOL,
         generation=gen_config(temperature=0.2, top_p=0.9, top_k=50, do_sample=True)),
    case("llama-3.1-8b", "Llama-3.1-8B", LLAMA31_8B, card=CARD_LLAMA31,
         generation=gen_config(do_sample=True, temperature=0.6, top_p=0.9)),
    case("llama-3.1-8b-tiny", "Llama-3.1-8B", TINY,
         generation=gen_config(temperature=0.6, top_p=0.9, repetition_penalty=1.1, min_p=0.05)),
    case("vicuna-13b-v1.5", "vicuna-13b-v1.5", LLAMA2_13B, card=CARD_VICUNA,
         generation=gen_config(max_length=4096, pad_token_id=0, temperature=0.9, top_p=0.6)),
    case("guanaco-7b-hf", "guanaco-7B-HF", LLAMA_7B, card=CARD_GUANACO),
    case("yi-6b-chat", "Yi-6B-Chat", YI_6B, card=CARD_YI),
    case("mistral-merge", "Mistral-7B-Merge-14-v0.1", MISTRAL_7B, card=CARD_MERGE),
    case("thebloke-card", "Mistral-7B-Instruct-v0.2-GPTQ", MISTRAL_7B, card=CARD_BLOKE),
    case("direct-card-keys", "some-model", TINY, card=CARD_DIRECT,
         generation=gen_config(temperature=1, top_k=0, penalty_last_n=64, penalty_repeat=1.05,
                               mirostat=2, mirostat_tau=5.0, mirostat_eta=0.1, xtc_probability=0.5,
                               xtc_threshold=0.1, sequence="edkypmxt")),
    case("license-list", "Phi-3-mini-128k-instruct", TINY, card=CARD_LICENSE_LIST),
    case("null-card-values", "TinyLlama-1.1B-Chat-v1.0", TINY, card=CARD_NULLS),
    case("int-tags", "gemma-2-2b-it", TINY, card=CARD_INT_TAGS),
    case("mixed-tags", "gemma-2-2b-it", TINY, card=CARD_MIXED_TAGS),
    case("float-version", "qwen", TINY, card=CARD_FLOAT_VERSION),
    case("falsy-values", "Qwen2.5-0.5B-Instruct", TINY, card=CARD_FALSY_VERSION),
    case("card-not-mapping", "tiny-llama", TINY, card=CARD_NOT_MAPPING),
    case("card-no-front-matter", "tiny-llama", TINY, card=CARD_NO_FRONT_MATTER),
    case("card-crlf-tabs", "tiny-llama", TINY, card=CARD_CRLF),
    case("card-bad-yaml", "tiny-llama", TINY, card=CARD_BAD_YAML),
    case("card-dataset-dicts", "tiny-llama", TINY, card=CARD_DATASET_DICT),
    case("name-or-path-hf-id", "model", TINY,
         config=llama_config(_name_or_path="meta-llama/Llama-2-7b-chat-hf")),
    case("name-or-path-local", "my-model-v2", TINY,
         config=llama_config(_name_or_path="checkpoints/meta-llama/Llama-2-7b-hf")),
    case("name-or-path-sentence", "dir", TINY, config=llama_config(_name_or_path="My Fancy Model")),
    case("mixtral-8x7b", "Mixtral-8x7B-Instruct-v0.1", MIXTRAL),
    case("tiny-moe", "tiny-moe", TINY_MOE),
    case("bloom-style-size", "bloom-7b1", LLAMA_7B),
    case("quant-in-name", "Meta-Llama-3-8B-Instruct-Q4_K_M", LLAMA31_8B),
    case("context-in-name", "Llama-3.1-8B-Instruct-128k", LLAMA31_8B),
    case("gen-config-invalid-json", "tiny-llama", TINY, generation="{ not json"),
    case("gen-config-float-top-k", "tiny-llama", TINY, generation=gen_config(top_k=50.0)),
    case("gen-config-nulls", "tiny-llama", TINY, generation=gen_config(top_k=None, temperature=None)),
    case("gen-config-both-penalties", "tiny-llama", TINY,
         generation=gen_config(penalty_repeat=1.2, repetition_penalty=1.3)),
    case("gen-config-bool-and-huge", "tiny-llama", TINY,
         generation=gen_config(top_k=True, temperature=1e39)),
    case("model-name-option", "tiny-llama", TINY, model_name="Overridden Name"),
    case("metadata-override", "Mistral-7B-Instruct-v0.2", MISTRAL_7B, card=CARD_SMOL,
         metadata_override=json.dumps({
             "general.name": "Override Name",
             "general.author": "Override Author",
             "general.size_label": "Big",
             "general.license.name": "custom-license",
             "general.tags": ["x", "y"],
             "general.languages": None,
             "general.sampling.top_k": 40,
             "general.sampling.temp": 0.7,
             "general.base_models": [{"name": "Base One", "organization": "Org", "repo_url": "https://example.com/b1"}],
             "general.datasets": [{"name": "Data One"}, {}],
         }, indent=2)),
    case("unicode-name", "ŝmall-modèl-7b", LLAMA_7B),
    case("underscore-name", "openchat_3.5", LLAMA_7B),
    case("dotted-name", "phi-2", TINY),
]


class ConverterStub:
    """Stands in for a ModelBase: the attributes prepare_metadata reads, nothing else."""

    def __init__(self, writer, directory: Path, ftype, model_name, override_path):
        self.gguf_writer = writer
        self.dir_model = directory
        self.dir_model_card = directory
        self.model_name = model_name
        self.metadata_override = override_path
        self.remote_hf_model_id = None
        self.ftype = ftype
        self._is_nvfp4 = False
        self._is_mxfp4 = False
        self._prec_a4 = {}

    def set_type(self):
        ModelBase.set_type(self)

    def set_gguf_parameters(self):
        pass


FTYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}


def add_tensors(writer, tensors):
    for name, shape in tensors:
        writer.add_tensor_info(name, shape, np.dtype(np.float16), int(np.prod(shape, dtype=np.int64)) * 2)


def run_case(c: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / c["directory_name"]
        directory.mkdir()
        for fname, text in c["files"].items():
            (directory / fname).write_bytes(text.encode("utf-8"))
        override_path = None
        if c["metadata_override"] is not None:
            override_path = Path(tmp) / "override.json"
            override_path.write_text(c["metadata_override"], encoding="utf-8")

        writer = gguf.GGUFWriter(path=None, arch="llama")
        add_tensors(writer, c["tensors"])
        counts = writer.get_total_parameter_count()
        stub = ConverterStub(writer, directory, FTYPES[c["outtype"]], c["model_name"], override_path)
        result = dict(c)
        result["tensors"] = [[n, s] for n, s in c["tensors"]]
        result["parameter_count"] = dict(zip(("total", "shared", "expert", "expert_count"), counts))
        try:
            ModelBase.prepare_metadata(stub, vocab_only=False)
            result["kv"] = dump_kv(writer)
        except Exception as e:  # what the converter would die with
            result["error"] = error_text(e)
            return result
        # TextModel.prepare_metadata: the default output name when the output is a directory
        md = stub.metadata
        output_type = stub.ftype.name.partition("_")[2]
        try:
            result["file_name"] = gguf.naming_convention(
                md.name, md.basename, md.finetune, md.version, md.size_label, output_type,
                model_type="LoRA" if counts[0] < 0 else None) + ".gguf"
        except Exception as e:
            result["file_name_error"] = error_text(e)
        return result


# ---------------------------------------------------------------------------------------------
# Unit goldens

MODEL_IDS = [
    "tiny-llama", "Mistral-7B-Instruct-v0.2", "SmolLM2-135M-Instruct", "Llama-3.1-8B", "vicuna-13b-v1.5",
    "guanaco-7B-HF", "Yi-6B-Chat", "mistralai/Mistral-7B-Instruct-v0.2", "meta-llama/Llama-2-7b-chat-hf",
    "meta-llama/Meta-Llama-3.1-70B-Instruct", "Mixtral-8x7B-Instruct-v0.1", "Qwen/Qwen1.5-MoE-A2.7B",
    "Qwen3-30B-A3B", "bloom-7b1", "bigscience/bloomz-560m", "gpt2-xl", "t5-small", "google/flan-t5-large",
    "phi-2", "Phi-3-mini-128k-instruct", "Phi-3.5-mini-instruct", "TinyLlama-1.1B-Chat-v1.0",
    "deepseek-coder-33b-instruct", "openchat_3.5", "Meta-Llama-3-8B-Instruct-Q4_K_M", "model-bf16",
    "model-f16", "model-fp32", "model-iq2_xs", "model-q8_0", "Llama-3.1-8B-Instruct-128k",
    "Llama-3-8B-Instruct-262k", "gemma-2-2b-it", "gemma-7b", "Qwen2.5-0.5B-Instruct",
    "Qwen2.5-Coder-32B-Instruct", "stabilityai/stablelm-2-zephyr-1_6b", "falcon-40b", "mpt-7b-storywriter",
    "./local-model-7B", "../other/Model-1B", ".hidden/Model", "My Fancy Model", "", "-", "--", "x--y-",
    "a/b/c-7B", "v1", "v1.2-7B", "iter3-7B-chat", "Model-v2-v3", "7B", "Model-7B-7B", "Model-7B-8x7B",
    "Model-small-7B", "Model-small", "Model-XL", "Model-xxl-instruct", "Model-mini-lora", "Model-LoRA",
    "Model-7B-lora", "Model-1.5T", "Model-300k", "Model-0.5m", "Model-7_5B", "Model-A3B", "Model-A3b1",
    "Model-2x1.5B-Vision", "UPPER-CASE-MODEL", "mixedCase-model-v1", "ŝmall-modèl-7b", "model-٣B",
    "Λάμδα-7B", "snake_case_model-7b-chat", "o'neil-7b", "123abc-model", "Model-Chat-Instruct-Vision",
    "Model-8b-base-v0.1-2024", "llama2", "Llama-2", "x-1-2-3",
]
TOTALS = [0, 100_000, 135_000_000, 7_241_732_096, 8_030_261_248, 46_702_792_704, -8_000_000_000,
          -100_000_000, 1_500_000_000_000]

TITLE_EXTRA = ["hello world", "  spaced  out  ", "v1.0 model", "1st-place", "tiny_llama", "o'neil",
               "ABC-def", "llama3b", "ŝmall modèl", "ǆemo", "straße-model", "Mixed-case-name", "ﬁne-tune",
               "ΣΑΣ-σας", "x--y", ""]

WEIGHT_COUNTS = [0, 1, 9, 10, 99, 100, 499, 500, 999, 1000, 1499, 1500, 9_999, 10_000, 95_000, 99_999,
                 100_000, 999_999, 1_000_000, 1_000_001, 1_049_999, 1_050_000, 9_949_999, 9_950_000,
                 90_464, 134_515_008, 135_000_000, 999_999_999, 1_000_000_000, 1_000_000_001,
                 1_235_814_400, 6_061_035_520, 7_241_732_096, 8_030_261_248, 12_852_024_320,
                 46_702_792_704, 70_553_706_496, 405_000_000_000, 999_999_999_999, 1_000_000_000_000,
                 1_000_000_000_001, 1_500_000_000_000, 12_345_678_901_234]

SIZE_LABEL_INPUTS = [
    (7_241_732_096, 7_241_732_096, 0, 0),
    (46_702_792_704, 1_602_224_128, 5_637_144_576, 8),
    (90_464, 90_464, 0, 0),
    (-8_000_000_000, 8_000_000_000, 0, 0),
    (100, 60, 5, 4),
    (0, 0, 0, 0),
    (30_532_122_624, 1_000_000_000, 1_900_000_000, 128),
]


def parameter_count_cases():
    cases = {
        "tiny": TINY,
        "tiny-tied": llama_tensors(32, 16, 2, 48, 4, 2, tied=True),
        "mixtral": MIXTRAL,
        "tiny-moe": TINY_MOE,
        "tiny-moe-bias": moe_tensors(64, 32, 2, 64, 4, 2, 4, bias=True),
        "lora": lora_tensors(64, 2, 8),
        "lora-unpaired": [("blk.0.attn_q.weight.lora_b", [64, 8]), ("blk.0.attn_q.weight.lora_a", [8, 64])],
        "lora-mismatched": [("blk.0.attn_q.weight.lora_a", [8, 64]), ("blk.0.attn_k.weight.lora_b", [64, 8])],
        "scalar-and-empty": [("a.weight", []), ("b.weight", [0, 5]), ("c.weight", [3])],
        "exps-2d": [("blk.0.ffn_gate_exps.weight", [4, 16]), ("x.weight", [2, 2])],
        "uneven-experts": [("blk.0.ffn_up_exps.weight", [8, 4, 4]), ("blk.1.ffn_up_exps.weight", [3, 4, 4])],
    }
    out = []
    for name, tensors in cases.items():
        w = gguf.GGUFWriter(path=None, arch="llama")
        add_tensors(w, tensors)
        out.append({"id": name, "tensors": [[n, s] for n, s in tensors],
                    "result": dict(zip(("total", "shared", "expert", "expert_count"),
                                       w.get_total_parameter_count()))})
    return out


FRONT_MATTER = {
    "mistral": CARD_MISTRAL, "smol": CARD_SMOL, "llama31": CARD_LLAMA31, "vicuna": CARD_VICUNA,
    "guanaco": CARD_GUANACO, "yi": CARD_YI, "merge": CARD_MERGE, "bloke": CARD_BLOKE, "direct": CARD_DIRECT,
    "license-list": CARD_LICENSE_LIST, "nulls": CARD_NULLS, "int-tags": CARD_INT_TAGS,
    "falsy": CARD_FALSY_VERSION, "not-mapping": CARD_NOT_MAPPING, "no-front-matter": CARD_NO_FRONT_MATTER,
    "crlf-tabs": CARD_CRLF, "bad-yaml": CARD_BAD_YAML, "dataset-dicts": CARD_DATASET_DICT,
    "empty-file": "",
    "only-open": "---\n",
    "empty-front-matter": "---\n---\n# body\n",
    "comment-only": "---\n# nothing here\n---\n",
    "bom": "\ufeff---\nlicense: mit\n---\n",
    "unclosed": "---\nlicense: mit\ntags:\n- a\n",
    "scalar-types": """---
s1: plain text here
s2: 'single ''quoted'' # not a comment'
s3: "double \\"quoted\\" \\t tab \\u00e9 \\x41 \\\\ \\/ slash"
i1: 42
i2: -17
i3: 0x1F
i4: 0o17
i5: 017
i6: 0b101
i7: 1_000
i8: 1:30
i9: +5
f1: 3.14
f2: -0.5
f3: 1e3
f4: 1.0e+3
f5: .5
f6: .inf
f7: -.Inf
f8: .NaN
f9: 1_0.5
f10: 1.
f11: 1:30.5
b1: true
b2: False
b3: yes
b4: NO
b5: on
b6: Off
b7: y
n1: null
n2: ~
n3:
n4: Null
d1: 2024-01-15
d2: 2001-12-14t21:59:43.10-05:00
d3: 2001-12-14 21:59:43.10
x1: 08
x2: 0x
x3: 12:60
x4: 1.2.3
x5: v1.0
x6: -x
x7: a:b
x8: http://example.com/x#frag
x9: value # comment
x10: '#not comment'
x11: 7b
x12: 3.0.1
x13: =x
---
""",
    "block-scalars": """---
lit: |
  line one
    indented
  line three

keep: |+
  kept


strip: |-
  stripped
folded: >
  folded one
  folded two

  new para
   more indented
  back
explicit: |2
   leading space
after: done
---
""",
    "multiline-scalars": """---
plain: first line
  second line

  after blank
dq: "first
  second

  third \\
  joined"
sq: 'one
   two'
next: x
---
""",
    "sequences": """---
a:
- x
- y
b:
  - 1
  - [2, 3]
  -
    - nested
c: [a, 'b c', "d", 1.5, null, true]
d: []
e: [ spaced out , multi word ]
f: {k: v, n: 1}
g:
  - k: v
    m: [1, 2]
  - name: n
    url: u
  -   k2: v2
h: [a,
  b, c]
i: x - not a list
---
""",
    "nested-maps": """---
outer:
  inner:
    deep: value
  list:
  - 1
  other: 2
"quoted key": qv
'single key': sk
123: int key
true: bool key
null: null key
k with spaces: v
---
""",
    "norway": "---\nlanguage:\n- no\n- 'no'\n- No\n- nO\nx: y- no\n---\n",
    "error-sequence-in-value": "---\nx: - no\n---\n",
    "error-dash-value": "---\nx: -\n---\n",
    "duplicate-keys": "---\nlicense: mit\nlicense: apache-2.0\ntags: [a]\n---\n",
    "indented-root": "---\n  license: mit\n  tags:\n  - a\n---\n",
    "document-end": "---\nlicense: mit\n...\n---\n",
    "error-mapping-in-plain": "---\nlicense: a: b\n---\n",
    "error-unterminated-quote": "---\nlicense: \"abc\n---\n",
    "error-bad-indent": "---\ntags:\n  - a\n - b\n---\n",
    "anchor-alias": "---\nbase: &x value\nother: *x\n---\n",
    "error-tab-indicator": "---\nlicense: |0\n  x\n---\n",
    "comments-everywhere": """---
# top comment
license: mit # trailing
tags: # comment after key
  # comment line inside
  - a # item comment
  - 'b' # quoted then comment
language:

  - en

base_model: [x/y, # inline
  z/w]
---
""",
    "quoted-keys": "---\n\"a:b\": 1\n'it''s': 2\n\"x\" : [1]\n---\n",
    "plain-continued-in-sequence": "---\ntags:\n- first\n  continued\n- second\n---\n",
    "block-scalars-in-sequence": "---\ntags:\n- |\n  multi\n  line\n- >-\n  folded\n  text\n- last\n---\n",
    "compact-nested-sequences": "---\na:\n- - x\n  - y\n- - z\nb: 1\n---\n",
    "flow-root": "---\n{license: mit, tags: [a, b], model-index: {x: 1}}\n---\n",
    "scalar-root": "---\njust some text\n---\n",
    "url-values": "---\nbase_model: https://huggingface.co/org/name\nlicense_link: https://x.y/z#frag\nurl: a #b\n---\n",
    "special-strings": "---\na: 'yes'\nb: \"123\"\nc: 1.5e+3\nd: +.inf\ne: -0x1A\nf: 0b_1\ng: 1_000_000\nh: -1:00\ni: 0.\nj: ~x\n---\n",
    "flow-multiline": "---\ntags: [\n  a,\n  'b c',\n  \"d\n  e\"\n]\nlicense: {\n  k: v }\n---\n",
    "hyphen-key-list": "---\nmodel-index:\n- name: x\n  results:\n  - task:\n      type: text-generation\n    metrics:\n    - type: acc\n      value: 0.5\nlicense: mit\n---\n",
}


def front_matter_cases():
    out = []
    for name, text in FRONT_MATTER.items():
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "README.md").write_bytes(text.encode("utf-8"))
            entry = {"id": name, "readme": text}
            try:
                entry["card"] = typed(gguf.Metadata.load_model_card(Path(tmp)))
            except Exception as e:
                entry["error"] = error_text(e)
        out.append(entry)
    return out


def mutated_front_matter_cases(count=800, seed=20251129):
    """Seeded random edits of the front-matter cases, each read by PyYAML: a differential test of the
    reader on inputs nobody wrote by hand (roughly a third of them are YAML errors)."""
    import random
    rng = random.Random(seed)
    seeds = [text for name, text in FRONT_MATTER.items() if len(text) > 8 and name != "anchor-alias"]
    alphabet = "-:#'\"[]{},|>!? \n\\ab0.~"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        readme = Path(tmp) / "README.md"
        while len(out) < count:
            chars = list(rng.choice(seeds))
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(chars))
                op = rng.randrange(3)
                if op == 0:
                    chars[at] = rng.choice(alphabet)
                elif op == 1:
                    chars.insert(at, rng.choice(alphabet))
                elif len(chars) > 8:
                    del chars[at]
            text = "".join(chars)
            readme.write_bytes(text.encode("utf-8"))
            entry = {"readme": text}
            try:
                entry["card"] = typed(gguf.Metadata.load_model_card(Path(tmp)))
            except Exception as e:
                entry["error"] = type(e).__name__
            out.append(entry)
    return out


def file_name_cases():
    inputs = [
        ("Tiny Llama", None, None, None, "90K", "F16", None),
        ("Mistral 7B Instruct v0.2", "Mistral", "Instruct", "v0.2", "7B", "Q8_0", None),
        (" Some Name/With Slash ", None, " fine tune ", " v 1 ", None, "bf16", None),
        (None, None, None, None, None, None, None),
        ("Name", "base/name x", None, None, "8x7B", "F32", "LoRA"),
        ("Name", None, None, None, None, None, "vocab"),
    ]
    templates = ["model-{ftype}.gguf", "model-{FTYPE}.gguf", "model-{outtype}-{OUTTYPE}.gguf", "model-{}.gguf",
                 "model-{0}.gguf", "model.gguf", "{{literal}}-{ftype}.gguf"]
    names = [{"args": list(a), "result": gguf.naming_convention(*a)} for a in inputs]
    filled = [{"template": t, "output_type": ot, "result": gguf.fill_templated_filename(t, ot)}
              for t in templates for ot in ("Q8_0", None)]
    # (format specs such as "{ftype:>4}" work in Python; wconv rejects them and tests that separately)
    bad_templates = ["model-{name}.gguf", "model-{.gguf", "model-}.gguf", "{}-{}.gguf", "{}-{0}.gguf"]
    for t in bad_templates:
        try:
            result = gguf.fill_templated_filename(t, "Q8_0")
        except Exception:
            result = None
        filled.append({"template": t, "output_type": "Q8_0", "result": result})
    paths = ["models/tiny-llama", "models/tiny-llama/", "tiny-llama", ".", "./", "a/b/.", "a/./b", "/", "",
             "..", "a/..", "//x//", "/abs/Mistral-7B-Instruct-v0.2"]
    path_names = [{"path": p, "name": Path(p).name} for p in paths]
    return {"naming_convention": names, "fill_templated_filename": filled, "path_names": path_names}


def write_json(path: Path, obj):
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    # Keep tensor lists readable: integer arrays on one line, then each [name, shape] pair on one line.
    text = re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)?\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in (m.group(1) or "").split(",") if x.strip()) + "]", text)
    text = re.sub(r'\[\s*("(?:[^"\\\n]|\\.)*"),\s*(\[[^\]\n]*\])\s*\]', r"[\1, \2]", text)
    assert json.loads(text) == obj
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def main():
    out = ARGS.out
    conv = out / "convert"
    if conv.exists():
        for old in conv.glob("*.json"):
            old.unlink()
    for c in CASES:
        write_json(conv / f"{c['id']}.json", run_case(c))

    ids = []
    for model_id in MODEL_IDS:
        for total in TOTALS:
            ids.append({"id": model_id, "total_params": total,
                        "components": list(gguf.Metadata.get_model_id_components(model_id, total))})
    # Seeded random ids built from the kinds of parts real names have.
    import random
    rng = random.Random(7)
    words = ["Llama", "mistral", "Qwen2.5", "phi", "gemma", "SmolLM2", "Yi", "vicuna", "TinyLlama", "open", "x",
             "Coder", "base", "hf", "GGUF", "it", "DPO", "v0.1", "v2", "3", "3.1", "iter5", "7B", "7b", "1.5B",
             "135M", "8x7B", "8x22b", "13b1", "2_7B", "A3B", "1T", "350k", "32k", "128K", "small", "XL", "mini",
             "Q4_K_M", "q8_0", "bf16", "F16", "fp32", "iq2_xs", "Chat", "instruct", "Vision", "LoRA", "lora",
             "", "ǅemo", "modèl", "٣B"]
    random_ids = []
    for _ in range(400):
        name = "-".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        if rng.random() < 0.3:
            name = rng.choice(["meta-llama", "mistralai", "Qwen", ".", "..", "a b"]) + "/" + name
        random_ids.append(name)
    for model_id in random_ids:
        total = rng.choice(TOTALS)
        ids.append({"id": model_id, "total_params": total,
                    "components": list(gguf.Metadata.get_model_id_components(model_id, total))})
    titles = [{"text": t, "title": gguf.Metadata.id_to_title(t)} for t in MODEL_IDS + TITLE_EXTRA + random_ids]
    write_json(out / "model_ids.json", {"components": ids, "titles": titles})

    notation = [{"count": n, "min_digits": d, "result": gguf.model_weight_count_rounded_notation(n, d)}
                for n in WEIGHT_COUNTS for d in (1, 2, 3)]
    labels = [{"total": t, "shared": s, "expert": e, "expert_count": c, "result": gguf.size_label(t, s, e, c)}
              for t, s, e, c in SIZE_LABEL_INPUTS]
    write_json(out / "size_labels.json", {"notation": notation, "size_label": labels})
    write_json(out / "parameter_counts.json", parameter_count_cases())
    write_json(out / "front_matter.json", front_matter_cases())
    # one compact case per line: this file is large and only read by the test
    mutations = mutated_front_matter_cases()
    (out / "front_matter_mutations.json").write_text(
        "[\n" + ",\n".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in mutations) + "\n]\n",
        encoding="utf-8")
    write_json(out / "file_names.json", file_name_cases())
    print(f"wrote {len(CASES)} converter cases and unit goldens to {out}")


if __name__ == "__main__":
    main()
