"""From `TrainConfig` to `TrainingArguments`: batch arithmetic, precision, and the ZeRO config."""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from typing import Any

import torch
from transformers import TrainingArguments

from warriorcoder.config import TrainConfig
from warriorcoder.errors import ConfigError

DEEPSPEED_CONFIGS = ("zero2", "zero3", "zero3_offload")
"""The DeepSpeed configs shipped in `warriorcoder/training/deepspeed/` ("auto" values)."""


def world_size() -> int:
    """Number of training processes, as set by torchrun / the deepspeed launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def gradient_accumulation_steps(global_batch: int, micro_batch: int, world: int) -> int:
    """`global = micro x accumulation x world`; raise a clear error when it does not divide."""
    per_step = micro_batch * world
    if global_batch % per_step:
        lower = global_batch // per_step * per_step
        raise ConfigError(
            f"train.global_batch_size={global_batch} is not divisible by "
            f"train.micro_batch_size ({micro_batch}) x world size ({world}) = {per_step}; "
            f"choose a global batch that is a multiple of {per_step} "
            f"(e.g. {lower or per_step} or {lower + per_step}) or another micro batch size"
        )
    return global_batch // per_step


def deepspeed_config_name(zero_stage: int, offload: bool) -> str:
    """Name of the shipped config for a ZeRO stage (offload needs ZeRO-3)."""
    if offload and zero_stage != 3:
        raise ConfigError("train.offload needs train.zero_stage: 3 (the shipped offload config)")
    return "zero3_offload" if offload else f"zero{zero_stage}"


def load_deepspeed_config(name: str) -> dict[str, Any]:
    """The shipped DeepSpeed config `name` (one of DEEPSPEED_CONFIGS) as a dict."""
    if name not in DEEPSPEED_CONFIGS:
        raise ConfigError(f"unknown DeepSpeed config {name!r}; choose one of {DEEPSPEED_CONFIGS}")
    path = resources.files("warriorcoder.training").joinpath("deepspeed", f"{name}.json")
    return json.loads(path.read_text())


def resolve_bf16(setting: bool | str) -> bool:
    """`"auto"`: bf16 where the GPU supports it. `True` without such a GPU is an error."""
    available = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if setting == "auto":
        return available
    if setting and not available:
        raise ConfigError(
            "train.bf16 is true but this machine has no GPU with bf16 support; "
            "set train.bf16: auto (or false)"
        )
    return bool(setting)


def attach_deepspeed_comm() -> None:
    """Let DeepSpeed use the process group accelerate opened (on CPU it opens a gloo group itself).

    ZeRO-3 partitions the model while it loads (`zero.Init`) and sizes batches by DeepSpeed's
    world size; without this, a CPU run with several processes sees a world of one.
    """
    import deepspeed
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        deepspeed.init_distributed(dist_backend=dist.get_backend())


DEEPSPEED_WARMUP_LR = "warmup_lr"
"""`train.lr_scheduler_type` for DeepSpeed's own WarmupLR (the paper's schedule)."""


def with_scheduler(deepspeed: dict[str, Any], train: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed config with a WarmupLR `scheduler` block when `lr_scheduler_type` is
    `warmup_lr` (its "auto" values are filled by transformers: min lr 0, max lr the learning
    rate, warmup steps ceil(warmup_ratio x max_steps)); unchanged otherwise.

    WarmupLR warms up from 0 to the learning rate over the warmup steps, by `log` (DeepSpeed's
    default: lr x log(step + 1) / log(warmup)) or `linear` (lr x step / warmup), then holds it.
    """
    if train.lr_scheduler_type != DEEPSPEED_WARMUP_LR:
        return deepspeed
    params = {"warmup_min_lr": "auto", "warmup_max_lr": "auto", "warmup_num_steps": "auto",
              "warmup_type": train.warmup_type}
    return {**deepspeed, "scheduler": {"type": "WarmupLR", "params": params}}


def build_training_arguments(
    train: TrainConfig, *, deepspeed: dict[str, Any] | None = None
) -> TrainingArguments:
    """TrainingArguments with the paper's hyperparameters and the chosen ZeRO config.

    Raises `ConfigError` for a `train.lr_scheduler_type` neither `warmup_lr` nor a
    transformers schedule."""
    accumulation = gradient_accumulation_steps(
        train.global_batch_size, train.micro_batch_size, world_size()
    )
    if deepspeed is None:
        deepspeed = load_deepspeed_config(deepspeed_config_name(train.zero_stage, train.offload))
    deepspeed = with_scheduler(deepspeed, train)
    scheduler = train.lr_scheduler_type
    if scheduler == DEEPSPEED_WARMUP_LR:
        scheduler = "constant_with_warmup"  # unused: DeepSpeed's scheduler block takes over
    else:
        from transformers.trainer_utils import SchedulerType

        known = [kind.value for kind in SchedulerType]
        if scheduler not in known:
            raise ConfigError(
                f"train.lr_scheduler_type {scheduler!r} is unknown; use {DEEPSPEED_WARMUP_LR!r} "
                f"(DeepSpeed WarmupLR, the paper's) or one of transformers': {', '.join(known)}"
            )
    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(train.output_dir),
        per_device_train_batch_size=train.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        weight_decay=train.weight_decay,
        warmup_steps=math.ceil(train.warmup_ratio * train.max_steps),
        lr_scheduler_type=scheduler,
        bf16=resolve_bf16(train.bf16),
        activation_checkpointing=train.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=train.logging_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        seed=train.seed,
        deepspeed=deepspeed,
        use_cpu=on_cpu,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
