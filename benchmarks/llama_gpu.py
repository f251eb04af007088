"""A ≥1B-parameter Llama on one GPU: throughput, MFU, and peak memory of full FT vs LoRA vs QLoRA.

    python benchmarks/llama_gpu.py [--steps 20] [--batch 8] [--seq 1024]

The model is built from a TinyLlama-1.1B-shaped config with random weights: speed and memory do
not depend on weight values. Every method trains through peftlab's own loop (`peftlab.runtime.train`) on
the same random token batches. Needs CUDA; bitsandbytes for QLoRA.

FLOPs per token are counted the usual way (Kaplan et al.; PaLM appendix B): forward 2N plus the
attention term 2·L·s·d (causal: half of the full matrix is work, but by convention the full
term is counted); backward twice the forward for full fine-tuning (6N in all). With LoRA the
frozen weights need activation gradients but no weight gradients, so the work is about 4N; we
report MFU both under the common 6N convention and under that LoRA-aware count.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

PEAK_BF16_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H200": 989.4, "A100": 312.0}


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def build(method: str, config: Any, device: str) -> Any:
    import torch
    from transformers import BitsAndBytesConfig, LlamaForCausalLM

    from peftlab.methods import ModelContext, get_method

    torch.manual_seed(0)
    if method == "qlora":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # 4-bit loading goes through from_pretrained
            LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp)
            quant = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
            model = LlamaForCausalLM.from_pretrained(
                tmp, quantization_config=quant, device_map={"": device}, dtype=torch.bfloat16
            )
    elif method == "full":
        model = LlamaForCausalLM(config).to(device)  # fp32 master weights, bf16 autocast: mixed precision
    else:
        model = LlamaForCausalLM(config).to(device, torch.bfloat16)  # frozen bf16 base, fp32 adapters
    m = get_method(method)
    ctx = ModelContext("CAUSAL_LM", "llama", total_steps=1, head_modules=())
    return m.prepare(model, m.params(), ctx)


def run(method: str, config: Any, args: argparse.Namespace, device: str) -> dict[str, Any]:
    import torch

    from peftlab.config import TrainConfig
    from peftlab.runtime.measure import MemoryMeter, count_parameters
    from peftlab.runtime.train import TrainSpec, train

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    meter = MemoryMeter(device)
    model = build(method, config, device)
    counts = count_parameters(model)
    meter.baseline()
    meter.start()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=g) for _ in range(args.steps)]

    def collate(ids: Any) -> dict[str, Any]:
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}

    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, warmup_ratio=0.0, scheduler="constant", precision="auto")
    lr = 2e-4 if method != "full" else 2e-5
    out = train(model, batches, collate, TrainSpec.of(cfg, cfg.optimizer(lr), device))
    meter.stop("train")
    w = args.warmup
    tok_s = sum(out.step_tokens[w:]) / sum(out.step_times[w:])
    n = counts["total"]
    attn = 2 * config.num_hidden_layers * args.seq * config.hidden_size  # per token, forward
    flops_6n = 6 * n + 3 * attn
    flops_4n = 4 * n + 3 * attn
    peak = peak_tflops(torch.cuda.get_device_name())
    mem = meter.record()
    del model
    return {
        "method": method,
        "params_total": n,
        "params_trainable": counts["trainable"],
        "tokens_per_s": tok_s,
        "step_ms_median": 1000 * sorted(out.step_times[w:])[len(out.step_times[w:]) // 2],
        "mfu_6n": tok_s * flops_6n / (peak * 1e12) if peak else None,
        "mfu_lora_aware": tok_s * (flops_4n if method != "full" else flops_6n) / (peak * 1e12) if peak else None,
        "baseline_allocated_mb": mem.get("baseline_allocated_mb"),
        "peak_allocated_mb": mem.get("train_peak_allocated_mb"),
        "peak_reserved_mb": mem.get("train_peak_reserved_mb"),
        "final_loss": out.final_train_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--methods", default="lora,qlora,full")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig

    if not torch.cuda.is_available():
        raise SystemExit("llama_gpu.py needs a CUDA GPU")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    name = torch.cuda.get_device_name()
    print(
        f"Llama (TinyLlama-1.1B shape, random weights) on {name}; batch {args.batch} × {args.seq} tokens, "
        f"{args.steps} steps ({args.warmup} warm-up excluded); bf16 peak {peak_tflops(name)} TFLOP/s"
    )
    rows = []
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        rows.append(run(method, config, args, "cuda"))
        print(json.dumps(rows[-1]), f"({time.perf_counter() - t0:.0f}s)", flush=True)
    full = next((r for r in rows if r["method"] == "full"), None)
    print(
        "\n| method | params | trainable | tokens/s | step ms | MFU (6N) | MFU (LoRA-aware) | peak alloc. MB | "
        "peak reserved MB | vs full (alloc.) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['peak_allocated_mb'] / full['peak_allocated_mb']:.2f}" if full else "—"
        print(
            f"| {r['method']} | {r['params_total'] / 1e9:.3f} B | {r['params_trainable']:,} | {r['tokens_per_s']:,.0f} "
            f"| {r['step_ms_median']:.0f} | {100 * r['mfu_6n']:.1f}% | {100 * r['mfu_lora_aware']:.1f}% "
            f"| {r['peak_allocated_mb']:,.0f} | {r['peak_reserved_mb']:,.0f} | {ratio} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": name, "args": vars(args), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
