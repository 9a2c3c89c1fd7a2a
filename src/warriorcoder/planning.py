"""Planning the arena before any call: how many rows each phase should make for it to reach
its scale, what training on them implies, the token estimates of the phases' cost plans and
the time estimates `--dry-run` prints. Pure arithmetic on the config and plain numbers, shared
by the phases, the runner, training and the CLI.

The scale knob is `compress.size` (the paper: 70,000): battles = `compress.size` x
`battle.battles_per_instruction`, `sft_final` has one row per kept instruction, and mining
(`mine.samples_per_config: auto`) draws enough to survive to `compress.size` x
`mine.survival.pool` filtered instructions at the assumed `mine.survival` rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

    from warriorcoder.config import ArenaConfig, TrainConfig

PAPER_EPOCHS = 512 * 448 / 70_000
"""Passes over the data in the paper: global batch 512 x 448 steps / 70,000 rows = 3.28."""
EPOCHS_LOW, EPOCHS_HIGH = 1.0, 5.0
"""Implied epochs outside this range are warned about (the paper: about 3.3)."""


def planned_mining_samples(config: ArenaConfig) -> int:
    """Mining calls per (expert, sampling config): `mine.samples_per_config`, or for `auto`

        ceil(compress.size x survival.pool / (survival.product x experts x sampling configs))

    where `survival.product` = extraction x dedup x decontamination x difficulty is the share
    of calls expected to reach `filtered`. With the defaults (70,000 x 1.2 / (0.2673 x 5 x 9))
    that is 6,984 per config, 314,280 calls in all.
    """
    mine = config.mine
    if mine.samples_per_config != "auto":
        return int(mine.samples_per_config)
    wanted = config.compress.size * mine.survival.pool
    configs = len(mine.temperatures) * len(mine.top_ps) * len(config.experts)
    return max(1, math.ceil(wanted / (mine.survival.product * configs) - 1e-9))


def planned_mining_calls(config: ArenaConfig) -> int:
    """Mining calls in all: experts x sampling configs x `planned_mining_samples`."""
    mine = config.mine
    configs = len(mine.temperatures) * len(mine.top_ps) * len(config.experts)
    return configs * planned_mining_samples(config)


def planned_filtered_rows(config: ArenaConfig, mined_calls: int | None = None) -> int:
    """Rows expected in `filtered` from `mined_calls` (default: the planned ones)."""
    calls = planned_mining_calls(config) if mined_calls is None else mined_calls
    return math.floor(calls * config.mine.survival.product)


def planned_battles(config: ArenaConfig) -> int:
    """Battle rounds: `compress.size` x `battle.battles_per_instruction` (the paper: 70,000)."""
    return config.compress.size * config.battle.battles_per_instruction


def planned_sft_rows(config: ArenaConfig) -> int:
    """Rows of `sft_final`: one target per kept instruction (`compress.size`)."""
    return config.compress.size


def implied_epochs(train: TrainConfig, rows: int) -> float:
    """Passes over `rows` training rows: global batch x steps / rows (inf for no rows)."""
    if rows <= 0:
        return math.inf
    return train.global_batch_size * train.max_steps / rows


def planned_epochs(config: ArenaConfig, rows: int | None = None) -> float:
    """Epochs the train settings imply on `rows` (default: `planned_sft_rows`); the defaults
    give 512 x 448 / 70,000 = 3.28, the paper's."""
    return implied_epochs(config.train, planned_sft_rows(config) if rows is None else rows)


def epochs_warning(train: TrainConfig, rows: int) -> str | None:
    """A warning naming the knobs when the implied epochs are below 1 or above 5, else None."""
    epochs = implied_epochs(train, rows)
    if EPOCHS_LOW <= epochs <= EPOCHS_HIGH:
        return None
    direction = "more" if epochs > EPOCHS_HIGH else "fewer"
    return (
        f"train.global_batch_size {train.global_batch_size} x train.max_steps "
        f"{train.max_steps} = {train.global_batch_size * train.max_steps:,} samples pass over "
        f"{rows:,} rows {epochs:.2f} times, {direction} than the paper's {PAPER_EPOCHS:.1f} "
        f"(512 x 448 / 70,000); set train.max_steps near "
        f"{max(1, round(PAPER_EPOCHS * rows / train.global_batch_size)):,} for "
        f"{PAPER_EPOCHS:.1f} epochs, or grow the data (compress.size, mine.samples_per_config)"
    )


def shortfall_note(kept: int, needed: int, phase: str, knob: str) -> str | None:
    """A sentence for the card and the log when `phase` kept fewer rows than the next phase
    needs, saying by how much and which knob to raise; None when `kept >= needed`."""
    if kept >= needed:
        return None
    missing = needed - kept
    share = missing / needed if needed else 0.0
    return (
        f"{phase} kept {kept:,} rows, {missing:,} ({share:.1%}) fewer than the {needed:,} "
        f"needed downstream; raise {knob}"
    )


def estimate_tokens(text: str) -> int:
    """A rough token count for cost plans made before any tokenizer is loaded (4 chars/token)."""
    return -(-len(text) // 4)


def mean_text_tokens(rows: datasets.Dataset, column: str, sample: int = 2000) -> int:
    """The mean `estimate_tokens` of a text column over (at most `sample` of) its rows."""
    if column not in rows.column_names or len(rows) == 0:
        return 0
    texts = rows.select(range(min(len(rows), sample)))[column]
    return round(sum(estimate_tokens(t or "") for t in texts) / len(texts))


PLAN_HEADER = ("phase", "LLM calls", "prompt tokens", "generated tokens", "rows out", "time")


def plan_rows(plans: Sequence[tuple[str, Any]],
              seconds_per_call: Callable[[str], float | None]) -> list[list[Any]]:
    """The cost-plan table (`PLAN_HEADER`) of phase plans (`PhasePlan`s), one row per phase and
    a total: each phase's time is its calls x `seconds_per_call(phase)` (the last build's
    measured rate; "unknown" without one, "-" for a phase that makes no call)."""
    rows, known = [], 0.0
    for name, plan in plans:
        per_call = seconds_per_call(name) if plan.calls else None
        estimate = "-" if not plan.calls else "unknown"
        if per_call is not None:
            known += per_call * plan.calls
            estimate = f"~{per_call * plan.calls / 60:.1f} min"
        rows.append([name, plan.calls, plan.prompt_tokens, plan.generated_tokens, plan.rows_out,
                     estimate])
    totals = [sum(r[i] for r in rows) for i in (1, 2, 3)]
    rows.append(["total", *totals, "-", f"~{known / 60:.1f} min (known phases)" if known
                 else "-"])
    return rows


def training_lines(train: TrainConfig, rows: int) -> list[str]:
    """What training on `rows` SFT rows implies: the epochs, and a warning when off the paper."""
    lines = [f"train: {train.global_batch_size} x {train.max_steps} steps = "
             f"{train.global_batch_size * train.max_steps:,} samples over {rows:,} rows = "
             f"{implied_epochs(train, rows):.2f} epochs (the paper: 3.28)"]
    if warning := epochs_warning(train, rows):
        lines.append(f"train: warning: {warning}")
    return lines
