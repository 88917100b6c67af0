#!/usr/bin/env python3
"""PyTorch + PEFT side of the LoRA training-step benchmark (bench/qlora_bench.py runs it beside wconv; or compare with
`WCONV_QLORA_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter TrainingSpeedCheck`).

SmolLM2-135M (the f32 HF directory made by bench/prepare_smollm2.py), batch 1 x 128 tokens with every token a
target, LoRA r=8 alpha=16 dropout=0.05 on all seven projections, torch.optim.AdamW (lr 1e-4), clip_grad_norm_(1.0),
2 threads. Bases: float32, and bitsandbytes NF4 with double quantization (compute dtype float32, CPU backend).
Each configuration runs in its own process so its peak RSS is its own; prints the median of 5 steps after 2
warm-up steps, wall time and process CPU time (time.process_time: all threads).

Usage: python bench/qlora_step_torch.py MODEL_DIR [--threads 2]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def run(model_dir, base, checkpointing, threads):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kwargs = {"dtype": torch.float32}
    if base == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
        kwargs["device_map"] = "cpu"
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    load = time.perf_counter() - start
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(1)
    ids = torch.cat([torch.tensor([[1]]), torch.randint(2, 49000, (1, 127), generator=g)], dim=1)
    times, cpu = [], []
    for i in range(7):
        t, c = time.perf_counter(), time.process_time()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if i >= 2:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"base": base, "checkpointing": checkpointing, "threads": threads, "load_seconds": load,
            "median_seconds": statistics.median(times), "min_seconds": min(times),
            "median_cpu_seconds": statistics.median(cpu), "loss": loss.item(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", nargs=2, metavar=("BASE", "CHECKPOINTING"))
    a = p.parse_args()
    if a.one:
        print(json.dumps(run(a.model_dir, a.one[0], a.one[1] == "1", a.threads)))
        return
    import torch, transformers, peft, bitsandbytes
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
          f"bitsandbytes {bitsandbytes.__version__}")
    for base in ["f32", "nf4"]:
        for checkpointing in ["0", "1"]:
            out = subprocess.run([sys.executable, __file__, a.model_dir, "--threads", str(a.threads), "--one", base,
                                  checkpointing], check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"PyTorch+PEFT {r['base']} base, gradient checkpointing {bool(r['checkpointing'])}: "
                  f"{r['median_seconds']:.3f} s/step (median of 5, min {r['min_seconds']:.3f}; CPU {r['median_cpu_seconds']:.3f} s), "
                  f"{r['threads']} threads, "
                  f"load {r['load_seconds']:.2f} s, loss {r['loss']:.3f}, peak RSS {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
