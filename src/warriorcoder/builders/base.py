"""What every phase shares: read the parent version, build rows, render the card, publish.

A builder is a function `(PhaseInput) -> PhaseOutput`; `run_phase` does the rest once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import datasets

from warriorcoder.config import PHASE_DATASETS, PHASE_PARENTS, ArenaConfig
from warriorcoder.dataset_cards import CardContent, render_dataset_card

if TYPE_CHECKING:
    from warriorcoder.generation import ExpertPool
    from warriorcoder.hub import HubStore, VersionRef

logger = logging.getLogger(__name__)


class PhaseError(RuntimeError):
    """A phase cannot run; the message says what to do."""


@dataclass
class PhaseInput:
    """What a builder gets: the config, the parent rows at a pinned version, and the experts."""

    config: ArenaConfig
    rows: datasets.Dataset | None
    parent: VersionRef | None
    pool_factory: Callable[[], ExpertPool] | None = None

    @cached_property
    def pool(self) -> ExpertPool:
        """The expert pool, started on first use (phases without LLM calls never start it)."""
        if self.pool_factory is None:
            from warriorcoder.generation import ExpertPool

            return ExpertPool.from_config(self.config)
        return self.pool_factory()

    @property
    def parent_rows(self) -> datasets.Dataset:
        if self.rows is None:
            raise PhaseError("this phase needs a parent dataset")
        return self.rows


@dataclass
class PhaseOutput:
    """What a builder returns: the rows to publish and what its card says about them."""

    dataset: datasets.Dataset
    content: CardContent


Builder = Callable[[PhaseInput], PhaseOutput]


def builder_for(phase: str) -> Builder:
    """The builder function of a phase (imported lazily: phases pull in heavy libraries)."""
    from importlib import import_module

    module = import_module(f"warriorcoder.builders.{phase}")
    return module.build


def resolve_parent(store: HubStore, phase: str, version: str | None) -> VersionRef | None:
    """The pinned parent version: the one asked for, else the latest (announced)."""
    parent_phase = PHASE_PARENTS[phase]
    if parent_phase is None:
        return None
    if version is not None:
        return store.get(parent_phase, version)
    ref = store.latest(parent_phase)
    if ref is None:
        raise PhaseError(
            f"`{phase}` reads {PHASE_DATASETS[parent_phase]!r} but no version of it exists yet; "
            f"run `warriorcoder {parent_phase}` first"
        )
    logger.info("%s: reading %s at %s (latest; pin it with --input)",
                phase, ref.repo_id, ref.version)
    return ref


def run_phase(
    phase: str,
    config: ArenaConfig,
    *,
    input_version: str | None = None,
    store: HubStore | None = None,
    pool: ExpertPool | None = None,
    builder: Builder | None = None,
) -> VersionRef:
    """Run one phase on its parent's pinned version and publish the new version with its card."""
    from warriorcoder.hub import HubStore

    store = store or HubStore.from_config(config.hub)
    parent = resolve_parent(store, phase, input_version)
    rows = store.load(parent.phase, parent.version) if parent is not None else None
    phase_input = PhaseInput(config=config, rows=rows, parent=parent,
                             pool_factory=(lambda: pool) if pool is not None else None)
    try:
        output = (builder or builder_for(phase))(phase_input)
    finally:
        if "pool" in phase_input.__dict__ and pool is None:  # the pool this phase started
            phase_input.pool.close()

    def render(ref: VersionRef) -> str:
        return render_dataset_card(phase=phase, ref=ref, parent=parent, config=config,
                                   dataset=output.dataset, content=output.content)

    ref = store.publish(phase, output.dataset, render, files=output.content.figure_files())
    logger.info("%s: published %s %s (%d rows)", phase, ref.repo_id, ref.version,
                len(output.dataset))
    return ref


def expert_records(phase_input: PhaseInput, names: list[str] | None = None) -> list[dict[str, Any]]:
    """name / model_id / model_revision of the experts, as the server or local model reports."""
    records = []
    for name in names or phase_input.config.expert_names:
        info = phase_input.pool.info(name)
        records.append({"name": name, "model_id": info.model_id,
                        "model_revision": info.model_revision})
    return records
