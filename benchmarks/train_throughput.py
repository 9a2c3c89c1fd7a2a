"""SFT throughput under DeepSpeed ZeRO-2 or ZeRO-3 on one GPU: tokens/s and model FLOPs utilisation.

The model is built from DeepSeek-Coder's config (written below; nothing is downloaded) with
random weights, and trained through the same stack as `warriorcoder train` (TrainingArguments
from `TrainConfig`, the shipped ZeRO config, the HF Trainer) on full-length random sequences.

    python benchmarks/train_throughput.py                       # 1.3B stand-in, ZeRO-3, bf16
    python benchmarks/train_throughput.py --zero 2              # the same under ZeRO-2
    python benchmarks/train_throughput.py --model 6.7b          # on an 80 GB GPU add --offload
    python benchmarks/train_throughput.py --model tiny          # CPU smoke run of the code path

MFU = tokens/s x training FLOPs per token / the GPU's peak dense bf16 FLOP/s, with FLOPs per
token = 6 x (parameters without the input embedding) + 12 x layers x hidden x sequence length
(PaLM, appendix B); recomputation under gradient checkpointing is not counted. Goal on an H100:
MFU >= 40%. Without a CUDA device only `--model tiny` runs; the others print what they would
measure and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

DEEPSEEK_CODER = {
    # deepseek-ai/deepseek-coder-{1.3b,6.7b}-base config.json (LlamaForCausalLM).
    "1.3b": {"hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 24,
             "num_attention_heads": 16, "num_key_value_heads": 16},
    "6.7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32},
    "tiny": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 4},
}  # fmt: skip
COMMON = {
    "vocab_size": 32256,
    "max_position_embeddings": 16384,
    "rms_norm_eps": 1e-6,
    "rope_theta": 100000.0,
    "rope_scaling": {"rope_type": "linear", "factor": 4.0},
    "tie_word_embeddings": False,
    "bos_token_id": 32013,
    "eos_token_id": 32014,
}
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}
"""Dense bf16 peak by device name (first match wins); override with --peak-tflops."""


def parameter_count(shape: dict[str, int]) -> tuple[int, int]:
    """(all parameters, parameters without the input embedding) of a Llama-shaped model."""
    hidden, inter, layers = (
        shape["hidden_size"],
        shape["intermediate_size"],
        shape["num_hidden_layers"],
    )
    kv = hidden * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_layer = hidden * (2 * hidden + 2 * kv) + 3 * hidden * inter + 2 * hidden
    embedding = COMMON["vocab_size"] * hidden
    rest = layers * per_layer + hidden + embedding  # final norm + lm_head
    return rest + embedding, rest


def flops_per_token(shape: dict[str, int], seq_len: int) -> float:
    _, matmul_params = parameter_count(shape)
    return 6 * matmul_params + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * seq_len


def peak_flops(device_name: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return tflops * 1e12
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(DEEPSEEK_CODER), default="1.3b")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps, warm-up included")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--zero", type=int, choices=(2, 3), default=3, help="ZeRO stage")
    parser.add_argument("--offload", action="store_true", help="ZeRO-3 with CPU offload")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    if args.offload and args.zero != 3:
        parser.error("--offload needs --zero 3 (the shipped offload config)")
    return args


def describe(args: argparse.Namespace) -> None:
    shape = DEEPSEEK_CODER[args.model]
    total, _ = parameter_count(shape)
    tokens = args.micro_batch * args.accumulation * args.seq_len
    rows = {
        "model": f"deepseek-coder-{args.model} shape, random weights, {total / 1e9:.2f}B params",
        "ZeRO": f"{'zero3_offload' if args.offload else f'zero{args.zero}'} (shipped config), "
        "1 process",
        "batch": f"{args.micro_batch} x {args.accumulation} accumulation x {args.seq_len} tokens"
        f" = {tokens} tokens/step",
        "FLOPs per token": f"{flops_per_token(shape, args.seq_len) / 1e9:.2f} GFLOP",
        "measures": f"tokens/s and MFU over steps {args.warmup + 1}..{args.steps}",
    }
    for key, value in rows.items():
        print(f"{key:<16} {value}")


class StepTimer:
    """A TrainerCallback recording wall time per optimizer step (device synchronised)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, *_args, **_kwargs):
                timer._sync()
                timer._start = time.perf_counter()

            def on_step_end(self, *_args, **_kwargs):
                timer._sync()
                timer.durations.append(time.perf_counter() - timer._start)

        self.callback = _Callback()
        self.durations: list[float] = []
        self._start = 0.0

    @staticmethod
    def _sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def run(args: argparse.Namespace) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, LlamaConfig, Trainer
    from transformers.trainer_utils import SaveStrategy

    from warriorcoder.config import TrainConfig
    from warriorcoder.training.arguments import attach_deepspeed_comm, build_training_arguments
    from warriorcoder.training.sft import ensure_process_group_env

    ensure_process_group_env()
    shape = DEEPSEEK_CODER[args.model]
    on_gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as out:
        train = TrainConfig(
            output_dir=Path(out),
            global_batch_size=args.micro_batch * args.accumulation,
            micro_batch_size=args.micro_batch,
            max_steps=args.steps,
            warmup_ratio=0.0,
            max_length=args.seq_len,
            zero_stage=args.zero,
            offload=args.offload,
            bf16="auto",
            gradient_checkpointing=not args.no_gradient_checkpointing,
            save_steps=10**9,
            logging_steps=10**9,
        )
        training_args = build_training_arguments(train)
        training_args.save_strategy = SaveStrategy.NO  # time training, not checkpoint writes
        attach_deepspeed_comm()
        config = LlamaConfig(**shape, **COMMON)
        dtype = torch.bfloat16 if training_args.bf16 else torch.float32
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
        rows = args.steps * args.micro_batch * args.accumulation
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, COMMON["vocab_size"], (rows, args.seq_len), generator=generator)
        data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
        timer = StepTimer()
        trainer = Trainer(model=model, args=training_args, train_dataset=data,
                          callbacks=[timer.callback])  # fmt: skip
        trainer.train()

    measured = timer.durations[args.warmup :]
    step_s = sum(measured) / len(measured)
    tokens_s = args.micro_batch * args.accumulation * args.seq_len / step_s
    device = torch.cuda.get_device_name() if on_gpu else "CPU"
    peak = peak_flops(device, args.peak_tflops)
    achieved = tokens_s * flops_per_token(shape, args.seq_len)
    memory = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else float("nan")
    mfu = f"{achieved / peak:.1%}" if peak else "n/a (give --peak-tflops)"
    zero = "3+offload" if args.offload else str(args.zero)
    tokens = args.micro_batch * args.accumulation * args.seq_len
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    cells = [device, args.model, zero, precision, tokens, f"{step_s:.3f}", f"{tokens_s:,.0f}",
             f"{achieved / 1e12:.1f}", mfu, f"{memory:.1f}"]  # fmt: skip
    print(
        "\n| device | model | ZeRO | dtype | tokens/step | step s | tokens/s | TFLOP/s | MFU "
        "| peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("| " + " | ".join(str(cell) for cell in cells) + " |")


def main() -> int:
    args = parse_args()
    describe(args)
    import torch

    if not torch.cuda.is_available() and args.model != "tiny":
        print(
            f"\nno CUDA device here: the {args.model} measurement needs a GPU and was not run "
            "(use --model tiny to exercise the code path on the CPU)",
            file=sys.stderr,
        )
        return 1
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
