"""(a) gguf-py reads every GGUF wconv writes, and its key/values and tensors equal llama.cpp's
converter output (testdata/golden/<model>.<outtype>.gguf) exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
from gguf.quants import dequantize

from conftest import GOLDEN, MODELS, OUTTYPES, require, run_wconv


def _raw_value(field) -> bytes:
    """Exact bytes of the value (each element length-prefixed, so array counts and string
    boundaries count too; float bits are compared exactly, including the sign of zero)."""
    out = []
    for i in field.data:
        b = bytes(field.parts[i].tobytes())
        out.append(len(b).to_bytes(8, "little") + b)
    return b"".join(out)


def _readable(field):
    v = field.contents()
    if isinstance(v, list) and len(v) > 12:
        return f"[{len(v)} items: {v[:6]} ... {v[-3:]}]"
    if isinstance(v, str) and len(v) > 120:
        return repr(v[:120] + "...")
    return repr(v)


def _kv(reader: GGUFReader) -> dict:
    return {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}


@pytest.mark.parametrize("outtype", OUTTYPES)
@pytest.mark.parametrize("model", MODELS)
def test_gguf_metadata_matches_converter(converted, model, outtype):
    ours = GGUFReader(str(converted.gguf(model, outtype)))
    gold = GGUFReader(str(GOLDEN / f"{model}.{outtype}.gguf"))
    ours_kv, gold_kv = _kv(ours), _kv(gold)
    problems = []
    missing = [k for k in gold_kv if k not in ours_kv]
    if missing:
        problems.append(f"missing keys: {missing}")
    for k, gf in gold_kv.items():
        of = ours_kv.get(k)
        if of is None:
            continue
        gt = [t.name for t in gf.types]
        ot = [t.name for t in of.types]
        if gt != ot:
            problems.append(f"{k}: type {ot} != converter {gt}")
        elif _raw_value(of) != _raw_value(gf):
            problems.append(f"{k}: value {_readable(of)} != converter {_readable(gf)}")
    extra = [k for k in ours_kv if k not in gold_kv]
    if extra:
        print(f"note: keys written by wconv but not by the converter: {extra}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("outtype", OUTTYPES)
@pytest.mark.parametrize("model", MODELS)
def test_gguf_tensors_match_converter(converted, model, outtype):
    ours = GGUFReader(str(converted.gguf(model, outtype)))
    gold = GGUFReader(str(GOLDEN / f"{model}.{outtype}.gguf"))
    ot = {t.name: t for t in ours.tensors}
    gt = {t.name: t for t in gold.tensors}
    assert sorted(ot) == sorted(gt), f"tensor names differ: only ours {sorted(set(ot) - set(gt))}, only converter {sorted(set(gt) - set(ot))}"
    problems = []
    for name, g in gt.items():
        o = ot[name]
        gtype = GGMLQuantizationType(int(g.tensor_type))
        otype = GGMLQuantizationType(int(o.tensor_type))
        if otype != gtype:
            problems.append(f"{name}: type {otype.name} != converter {gtype.name}")
            continue
        if list(o.shape) != list(g.shape):
            problems.append(f"{name}: ne {list(o.shape)} != converter {list(g.shape)}")
            continue
        ob = np.asarray(o.data).view(np.uint8).reshape(-1)
        gb = np.asarray(g.data).view(np.uint8).reshape(-1)
        if not np.array_equal(ob, gb):
            of = dequantize(np.asarray(o.data), otype).astype(np.float32).reshape(-1)
            gf = dequantize(np.asarray(g.data), gtype).astype(np.float32).reshape(-1)
            diff = float(np.max(np.abs(of - gf))) if of.shape == gf.shape else float("nan")
            problems.append(f"{name} ({gtype.name}): data differs, max |Δ| = {diff:g}, "
                            f"{int(np.sum(of != gf))} of {gf.size} values differ")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("outtype", OUTTYPES)
@pytest.mark.parametrize("model", MODELS)
def test_gguf_kv_json_dump_is_current(model, outtype):
    """The committed .kv.json (used by the Swift tests) describes the committed golden GGUF."""
    dump = json.loads((GOLDEN / f"{model}.{outtype}.gguf.kv.json").read_text())
    r = GGUFReader(str(GOLDEN / f"{model}.{outtype}.gguf"))
    assert [e["key"] for e in dump["kv"]] == list(_kv(r))
    assert [t["name"] for t in dump["tensors"]] == [t.name for t in r.tensors]
    for e in dump["kv"]:
        f = r.fields[e["key"]]
        assert e["type"] == f.types[0].name
        if f.types[0] != GGUFValueType.ARRAY:
            v = f.contents()
            assert e["value"] == (float(v) if isinstance(v, (float, np.floating)) else v), e["key"]


@pytest.mark.parametrize("model", MODELS)
def test_inspect_json_parses(model):
    require("inspect")
    for p in (GOLDEN / f"{model}.f16.gguf", GOLDEN.parent / model):
        r = run_wconv("inspect", p, "--json")
        json.loads(r.stdout)
