"""Supervised fine-tuning of the target model on a pinned `sft_final` version, with DeepSpeed ZeRO.

One process (CPU or one GPU)::

    python -m warriorcoder.training.sft --config arena.yaml --dataset my-org/wc-sft_final@v3

8 GPUs on one node (either launcher)::

    deepspeed --num_gpus 8 --module warriorcoder.training.sft --config arena.yaml --dataset ...@v3
    torchrun --nproc_per_node 8 -m warriorcoder.training.sft --config arena.yaml --dataset ...@v3

Several nodes (a hostfile lists `host slots=8` per line; every node sees the same paths)::

    deepspeed --hostfile hostfile --num_nodes 2 --num_gpus 8 \\
        --module warriorcoder.training.sft --config arena.yaml --dataset ...@v3

The global batch (`train.global_batch_size`, paper: 512) stays fixed: gradient accumulation is
computed as global / (micro batch x world size), and a batch that does not divide is an error.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError

from warriorcoder.config import ArenaConfig, ConfigError, TrainConfig, load_config
from warriorcoder.errors import TrainingError, WarriorcoderError
from warriorcoder.generation.loading import loadable_model
from warriorcoder.hub import parse_spec
from warriorcoder.planning import PAPER_EPOCHS, epochs_warning, implied_epochs
from warriorcoder.training.checkpoint import (
    portable_base_model,
    publish_result,
    reusable_result,
    training_fingerprint,
    write_card_and_result,
)
from warriorcoder.training.dataset import DatasetSource, load_sft_dataset
from warriorcoder.training.formatting import (
    IGNORE_INDEX,
    PromptFormat,
    TokenizedData,
    tokenize_dataset,
)
from warriorcoder.training.result import TrainResult

logger = logging.getLogger(__name__)

FINAL_DIR = "final"
"""Subfolder of `train.output_dir` with the final checkpoint (intermediate ones: checkpoint-N)."""


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _say(message: str) -> None:
    if _is_main_process():
        print(f"[warriorcoder train] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_process_group_env() -> None:
    """Without a launcher, run as a world of one (DeepSpeed always initialises a process group)."""
    if "WORLD_SIZE" in os.environ:
        return
    os.environ.update(
        {
            "MASTER_ADDR": os.environ.get("MASTER_ADDR", "127.0.0.1"),
            "MASTER_PORT": os.environ.get("MASTER_PORT", str(_free_port())),
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "1",
        }
    )


def apply_overrides(config: ArenaConfig, overrides: dict[str, Any] | None) -> ArenaConfig:
    """A copy of `config` whose `train` section has `overrides` applied and validated."""
    if not overrides:
        return config
    try:
        train = TrainConfig.model_validate({**config.train.model_dump(), **overrides})
    except ValidationError as error:
        problems = "; ".join(
            f"train.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"invalid training override: {problems}") from None
    return config.model_copy(update={"train": train})


def _hyperparameters(train: TrainConfig, args: Any, zero_config: str) -> dict[str, Any]:
    return {
        "global_batch_size": train.global_batch_size,
        "micro_batch_size": train.micro_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "world_size": args.world_size,
        "max_steps": train.max_steps,
        "learning_rate": train.learning_rate,
        "weight_decay": train.weight_decay,
        "warmup_ratio": train.warmup_ratio,
        "warmup_steps": args.warmup_steps,
        "lr_scheduler_type": train.lr_scheduler_type,
        "warmup_type": train.warmup_type if train.lr_scheduler_type == "warmup_lr" else None,
        "max_length": train.max_length,
        "bf16": args.bf16,
        "deepspeed": zero_config,
        "packing": train.packing,
        "gradient_checkpointing": train.gradient_checkpointing,
        "seed": train.seed,
        "system_line": train.system_line,
        "skip_truncated": train.skip_truncated,
    }


def skip_truncated_rows(dataset: Any, train: TrainConfig) -> tuple[Any, int]:
    """Without the rows flagged `truncated` (when `train.skip_truncated` and the column exists),
    and how many were left out."""
    if not train.skip_truncated or "truncated" not in dataset.column_names:
        return dataset, 0
    kept = dataset.filter(lambda cut: [not c for c in cut], input_columns="truncated",
                          batched=True, desc="skipping truncated targets")
    return kept, len(dataset) - len(kept)


def _loss_history(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(int(entry["step"]), float(entry["loss"])) for entry in log_history if "loss" in entry]


def train_from_config(
    config: ArenaConfig,
    dataset: str | None = None,
    resume: bool = False,
    push: bool = False,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> TrainResult:
    """Fine-tune `train.base_model` on `sft_final`; save, card and (with `push`) publish it.

    `dataset` is `<repo-or-folder>@<version>`; default `train.dataset`, else this arena's newest
    `sft_final` in the hub store (the version used is printed and recorded in the card).
    `overrides` replaces fields of `config.train` (e.g. `{"zero_stage": 2, "max_steps": 20}`).
    A finished checkpoint in `output_dir/final` trained on the same dataset version with the
    same settings is reused (and not published twice) unless `force`. Raises `TrainingError`,
    `ConfigError`, `HubError`.
    """
    config = apply_overrides(config, overrides)
    if spec := dataset or config.train.dataset:
        parse_spec(spec)  # a malformed spec fails before DeepSpeed and torch start
    ensure_process_group_env()
    # Heavy imports after the cheap validation above, and after the process-group environment.
    from warriorcoder.training.arguments import (
        attach_deepspeed_comm,
        build_training_arguments,
        deepspeed_config_name,
        load_deepspeed_config,
    )

    zero_config = deepspeed_config_name(config.train.zero_stage, config.train.offload)
    output_dir = Path(config.train.output_dir)
    checkpoint = _last_checkpoint(output_dir) if resume else None
    args = build_training_arguments(config.train,
                                    deepspeed=load_deepspeed_config(zero_config))
    attach_deepspeed_comm()

    raw, source = load_sft_dataset(config, dataset)
    how = "pinned" if spec else "the newest version in the hub store"
    _say(f"dataset {source} ({how}; {len(raw)} rows, from {source.location})")
    print_ = training_fingerprint(config, source)
    if not force and not resume and (done := reusable_result(output_dir / FINAL_DIR, print_)):
        _say(f"reusing {done.checkpoint_dir}: trained on {source} with the same settings "
             "(--force trains again)")
        if push:
            _say(publish_result(done, config))
        return done
    run = _Run(config, args, zero_config, source, print_)
    trainer, data, skipped = _prepare(run, raw)
    output = trainer.train(resume_from_checkpoint=checkpoint)
    return _finish(run, trainer, output, data, skipped, push=push, force=force)


@dataclass(frozen=True)
class _Run:
    """The settings of one training run, resolved once."""

    config: ArenaConfig
    args: Any
    """The Trainer's `TrainingArguments`."""
    zero_config: str
    source: DatasetSource
    fingerprint: str

    @property
    def fmt(self) -> PromptFormat:
        return PromptFormat(self.config.train.prompt_template, self.config.train.system_line)


def _last_checkpoint(output_dir: Path) -> str:
    """The newest `checkpoint-<step>` folder to resume from; raises `TrainingError`."""
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if checkpoint is None:
        raise TrainingError(
            f"--resume: no checkpoint-<step> folder in {output_dir} to resume from; "
            "start without --resume (checkpoints are written every train.save_steps steps)"
        )
    _say(f"resuming from {checkpoint}")
    return checkpoint


def _prepare(run: _Run, raw: Any) -> tuple[Any, TokenizedData, int]:
    """The Trainer on the tokenised rows (truncated targets skipped), with what it was told."""
    from transformers import AutoTokenizer

    train, args = run.config.train, run.args
    raw, skipped = skip_truncated_rows(raw, train)
    if skipped:
        _say(f"{skipped} rows skipped: their target was cut by the length limit (`truncated`; "
             "train.skip_truncated: false keeps them)")
    with args.main_process_first(desc="preparing the base model"):  # a GGUF converts once
        base_model = loadable_model(train.base_model, run.config.generation.journal.parent
                                    / "models")
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with args.main_process_first(desc="tokenising sft_final"):
        data = tokenize_dataset(raw, tokenizer, run.fmt, train.max_length, source=str(run.source))
    _announce_batch(run, data)
    tokenizer.chat_template = run.fmt.chat_template()
    return _trainer(run, base_model, tokenizer, data), data, skipped


def _announce_batch(run: _Run, data: TokenizedData) -> None:
    """Print the rows, the batch arithmetic and the epochs it implies (warn when far off)."""
    train, args, rows_used = run.config.train, run.args, data.rows_used
    _say(
        f"{rows_used} rows to train on; {data.dropped_too_long} dropped as longer than "
        f"max_length={train.max_length} tokens"
    )
    _say(
        f"global batch {train.global_batch_size} = micro {train.micro_batch_size} x "
        f"accumulation {args.gradient_accumulation_steps} x world {args.world_size}; "
        f"DeepSpeed {run.zero_config}; bf16={args.bf16}; {train.max_steps} steps"
    )
    epochs = implied_epochs(train, rows_used)
    _say(
        f"{epochs:.2f} epochs = global batch {train.global_batch_size} x {train.max_steps} steps "
        f"/ {rows_used} rows (the paper: {PAPER_EPOCHS:.1f})"
    )
    if warning := epochs_warning(train, rows_used):
        _say(f"WARNING: {warning}")
        logger.warning(warning)


def _trainer(run: _Run, base_model: str, tokenizer: Any, data: TokenizedData) -> Any:
    """A `Trainer` of the base model (flash attention when packing on a GPU that has it)."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        Trainer,
    )

    train = run.config.train
    attention = "sdpa"
    if train.packing and torch.cuda.is_available():
        from transformers.utils import is_flash_attn_2_available

        if is_flash_attn_2_available():
            attention = "flash_attention_2"
    model = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=torch.bfloat16 if run.args.bf16 else torch.float32,
        attn_implementation=attention,
    )
    if train.packing:
        # One row per micro batch, position_ids restart per example: no cross-attention.
        collator: Any = DataCollatorWithFlattening(separator_id=IGNORE_INDEX)
    else:
        collator = DataCollatorForSeq2Seq(
            tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=8
        )
    return Trainer(model=model, args=run.args, train_dataset=data.dataset,
                   data_collator=collator, processing_class=tokenizer)


def _finish(run: _Run, trainer: Any, output: Any, data: TokenizedData, skipped: int, *,
            push: bool, force: bool) -> TrainResult:
    """Save the final checkpoint; on the main process write its card and result, publish."""
    train = run.config.train
    final_dir = Path(train.output_dir) / FINAL_DIR
    trainer.model.config.use_cache = True  # the Trainer turned it off; inference wants it
    trainer.save_model(str(final_dir))  # every rank: ZeRO-3 gathers the weights
    history = _loss_history(trainer.state.log_history)
    epochs = implied_epochs(train, data.rows_used)
    result = TrainResult(
        checkpoint_dir=final_dir,
        base_model=portable_base_model(run.config),
        dataset=run.source,
        rows_in=data.rows_in,
        rows_used=data.rows_used,
        rows_dropped_too_long=data.dropped_too_long,
        global_step=trainer.state.global_step,
        final_loss=history[-1][1] if history else None,
        train_loss=output.training_loss,
        loss_history=history,
        hyperparameters={**_hyperparameters(train, run.args, run.zero_config),
                         "rows_skipped_truncated": skipped, "implied_epochs": round(epochs, 3)},
        fingerprint=run.fingerprint,
    )
    if trainer.is_world_process_zero():
        write_card_and_result(run.config, result, run.fmt.prompt("<instruction>"))
        if push:
            _say(publish_result(result, run.config, force=force))
        final = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
        _say(f"saved {final_dir} (step {result.global_step}, final loss {final})")
    trainer.accelerator.wait_for_everyone()
    return result


def _parse_set(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set max_steps=20")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


class _Parser(argparse.ArgumentParser):
    """argparse with click's way of saying a usage mistake: usage, then `Error: ...`, exit 2
    (as `warriorcoder train` does)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"Error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m warriorcoder.training.sft",
        description="SFT of the arena's target model on a pinned sft_final version (DeepSpeed).",
    )
    parser.add_argument("--config", required=True, help="the arena YAML")
    parser.add_argument("--dataset", help="<repo-or-folder>@<version> of sft_final")
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint")
    parser.add_argument("--push", action="store_true", help="publish checkpoint + card")
    parser.add_argument("--force", action="store_true",
                        help="train again even when output_dir/final holds this checkpoint")
    parser.add_argument(
        "--deepspeed",
        choices=("zero2", "zero3", "zero3_offload"),
        help="shipped ZeRO config (default: train.zero_stage / train.offload)",
    )
    parser.add_argument("--output-dir", help="override train.output_dir")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a train field, e.g. --set max_steps=20 (repeatable)",
    )
    # The deepspeed launcher passes --local_rank; LOCAL_RANK in the environment says the same.
    parser.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The launchers' entry point. A user's mistake (`WarriorcoderError`) prints one line
    `Error: ...` and returns 1, as `warriorcoder train` does; anything else is a bug."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        overrides = _parse_set(args.set)
        if args.deepspeed:
            overrides["zero_stage"] = 2 if args.deepspeed == "zero2" else 3
            overrides["offload"] = args.deepspeed == "zero3_offload"
        if args.output_dir:
            overrides["output_dir"] = Path(args.output_dir).resolve()
        train_from_config(config, args.dataset, args.resume, args.push, overrides,
                          force=args.force)
    except WarriorcoderError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
