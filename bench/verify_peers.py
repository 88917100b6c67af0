"""Peer side of the verify benchmark: prompt evaluation of a token list in-process, after the
model is loaded. Prints the wall and CPU seconds (all threads of the process) of the evaluation
call only, imports and loading excluded, measured as `wconv run --json` measures its
`prompt_eval_seconds` / `prompt_eval_cpu_seconds`: one forward of all the tokens from an empty
cache, the first after loading.

Usage: verify_peers.py (transformers HF_DIR | llama-cpp F32_GGUF) TOKENS_JSON THREADS
"""
import json
import sys
import time

kind, model, tokens_path, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tokens = json.load(open(tokens_path))
if kind == "transformers":
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    ids = torch.tensor([tokens])
    with torch.no_grad():
        start, cpu = time.perf_counter(), time.process_time()
        logits = m(ids).logits
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert logits.shape[1] == len(tokens)
elif kind == "llama-cpp":
    from llama_cpp import Llama

    m = Llama(model_path=model, n_ctx=len(tokens), n_batch=len(tokens), n_ubatch=len(tokens), n_threads=threads,
              n_threads_batch=threads, logits_all=False, verbose=False)
    start, cpu = time.perf_counter(), time.process_time()
    m.eval(tokens)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert m.n_tokens == len(tokens)
else:
    sys.exit(f"unknown peer {kind}")
print(seconds, cpu)
