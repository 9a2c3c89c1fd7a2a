"""What every phase shares: its declaration, and the input and output of its builder.

Each phase module declares its facts beside its code, as `datasets` builders declare their info:

    PHASE = Phase(name="battle", dataset="battles", parent="compress",
                  required_columns=("id", "expert", "instruction"), features=FEATURES,
                  summary="...", config_sections=("battle",), uses_experts=True)

    @PHASE.builder
    def build(phase_input: PhaseInput) -> PhaseOutput: ...

    @PHASE.planner
    def plan(config: ArenaConfig, rows_in: int | None) -> PhasePlan: ...

`warriorcoder.builders` (this package's `__init__`) collects the six declarations in pipeline
order; `warriorcoder.runner` reads the parent version, checks the required columns, builds,
renders the card and publishes. A phase's `config_sections` are what its fingerprint holds:
list only the sections that change its rows (or its card), so that changing any other
section reuses its version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import datasets

from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards import CardContent
from warriorcoder.errors import InputDatasetError, PhaseError

if TYPE_CHECKING:
    from warriorcoder.generation import ExpertPool
    from warriorcoder.hub import VersionRef

__all__ = ["Phase", "PhaseError", "PhaseInput", "PhaseOutput", "PhasePlan", "expert_records"]


@dataclass
class PhaseInput:
    """What a builder gets: the config, the parent rows at a pinned version, and the experts."""

    config: ArenaConfig
    rows: datasets.Dataset | None
    parent: VersionRef | None
    pool_factory: Callable[[], ExpertPool] | None = None
    parent_card: Mapping[str, Any] | None = None
    """The parent version's `warriorcoder` card metadata (experts, counts, ...), if it has one."""

    @cached_property
    def pool(self) -> ExpertPool:
        """The expert pool, started on first use (phases without LLM calls never start it)."""
        if self.pool_factory is None:
            from warriorcoder.generation import ExpertPool

            return ExpertPool.from_config(self.config)
        return self.pool_factory()

    @property
    def parent_rows(self) -> datasets.Dataset:
        """The parent version's rows; raises `PhaseError` for a phase that has no parent."""
        if self.rows is None:
            raise PhaseError("this phase needs a parent dataset")
        return self.rows


@dataclass
class PhaseOutput:
    """What a builder returns: the rows to publish and what its card says about them."""

    dataset: datasets.Dataset
    content: CardContent


@dataclass(frozen=True)
class PhasePlan:
    """What a phase is expected to cost and produce, before any call is made.

    Token counts are estimates from the config's limits (`generated_tokens` is the upper bound
    `calls x max_new_tokens`) and, where the parent exists, from its real rows."""

    calls: int
    prompt_tokens: int
    generated_tokens: int
    rows_out: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "generated_tokens": self.generated_tokens, "rows_out": self.rows_out}


Builder = Callable[[PhaseInput], PhaseOutput]
Planner = Callable[[ArenaConfig, "datasets.Dataset | None", int | None], PhasePlan]


@dataclass
class Phase:
    """The facts of one phase, declared in its module next to its builder."""

    name: str
    dataset: str
    """The dataset it writes (repo `<namespace>/<prefix>-<dataset>`)."""
    parent: str | None
    """The phase whose dataset it reads (None: it reads none)."""
    summary: str
    """One or two sentences for the card."""
    required_columns: tuple[str, ...] = ()
    """Columns the parent version must have; checked once, before the builder runs."""
    features: datasets.Features | None = field(default=None, repr=False)
    """Columns and types of the dataset it writes, from a parent its parent phase wrote (a
    phase that passes its parent's columns on also keeps any other column it is given)."""
    config_sections: tuple[str, ...] = ()
    """Config sections that determine its output (with the parent version and the experts):
    its fingerprint holds these and no other, so a change elsewhere reuses its version."""
    uses_experts: bool = False
    """Whether it sends LLM calls (so its output also depends on the experts' identities)."""
    task_categories: tuple[str, ...] = ("text-generation",)
    build: Builder | None = field(default=None, repr=False)
    plan: Planner | None = field(default=None, repr=False)

    def builder(self, function: Builder) -> Builder:
        """Decorator: register the phase's builder."""
        self.build = function
        return function

    def planner(self, function: Planner) -> Planner:
        """Decorator: register the phase's cost planner."""
        self.plan = function
        return function

    def check_columns(self, rows: datasets.Dataset, parent_spec: str) -> None:
        """Raise `InputDatasetError` naming the required columns `rows` lacks."""
        missing = [c for c in self.required_columns if c not in rows.column_names]
        if missing:
            raise InputDatasetError(
                f"{self.name}: {parent_spec} lacks column(s) {', '.join(missing)} (it has "
                f"{', '.join(rows.column_names)}); read a version written by "
                f"`warriorcoder {self.parent}`"
            )
        if len(rows) == 0:
            raise InputDatasetError(f"{self.name}: {parent_spec} has no rows")


def expert_records(phase_input: PhaseInput, names: list[str] | None = None) -> list[dict[str, Any]]:
    """name / model_id / model_revision (and where the revision came from) of the experts."""
    records = []
    for name in names or phase_input.config.expert_names:
        info = phase_input.pool.info(name)
        record = {"name": name, "model_id": info.model_id, "model_revision": info.model_revision}
        source = getattr(info, "revision_source", None)
        if source:
            record["revision_source"] = source
        records.append(record)
    return records


def rows_dataset(rows: list[dict[str, Any]], features: datasets.Features) -> datasets.Dataset:
    """`Dataset.from_list`, which also accepts no rows (it raises a keys mismatch on `[]`)."""
    if not rows:
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_list(rows, features=features)
