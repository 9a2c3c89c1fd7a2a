"""Running a phase: pin the parent, check its columns, plan, build, card, publish (or reuse).

    ref = run_phase("battle", config)            # reads the latest `compressed`, announced
    ref = run_phase("battle", config, input_version="v3", force=True)

A phase whose latest version was built from the same parent version, the same effective
config (the phase's own sections and the experts' identities) and the same package version
is reused: announced, not published again (`ref.reused`). The fingerprint that decides this is
recorded in every card.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import datasets

from warriorcoder.builders import PHASES, get_phase
from warriorcoder.builders.base import Phase, PhaseInput, PhasePlan, expert_records
from warriorcoder.config import EXPERT_RUNTIME_FIELDS, ArenaConfig
from warriorcoder.dataset_cards import CardSection, render_dataset_card
from warriorcoder.errors import GenerationError, PhaseError
from warriorcoder.lineage import fingerprint as sha256_of
from warriorcoder.lineage import package_version

if TYPE_CHECKING:
    from warriorcoder.generation import ExpertPool
    from warriorcoder.hub import HubStore, Release, VersionRef

logger = logging.getLogger(__name__)


def resolve_parent(store: HubStore, phase: Phase, version: str | None) -> VersionRef | None:
    """The pinned parent version: the one asked for, else the latest (announced).

    Raises `VersionNotFoundError` for a version that does not exist, `PhaseError` when the
    parent has no version at all."""
    if phase.parent is None:
        return None
    parent = get_phase(phase.parent)
    if version is not None:
        return store.get(parent.dataset, version)
    ref = store.latest(parent.dataset)
    if ref is None:
        raise PhaseError(
            f"`{phase.name}` reads {parent.dataset!r} but no version of it exists yet; "
            f"run `warriorcoder {parent.name}` first"
        )
    logger.info("%s: reading %s at %s (latest; pin it with --input)",
                phase.name, ref.repo_id, ref.version)
    return ref


def fingerprint(phase: Phase, config: ArenaConfig, parent: VersionRef | None,
                experts: Sequence[dict[str, Any]]) -> str:
    """sha256 of everything that determines a phase's rows (paths and URLs excluded)."""
    data = config.to_card_dict()
    payload: dict[str, Any] = {
        "phase": phase.name,
        "package": package_version(),
        "parent": None if parent is None else [parent.repo_id, parent.version, parent.revision],
        "sections": {section: data[section] for section in phase.config_sections},
    }
    if phase.uses_experts:
        identities = {e["name"]: [e.get("model_id"), e.get("model_revision")] for e in experts}
        payload["experts"] = [
            {**{k: v for k, v in entry.items() if k not in EXPERT_RUNTIME_FIELDS},
             "served": identities.get(entry["name"])}
            for entry in data["experts"]
        ]
    return sha256_of(payload)


@dataclass
class _Usage:
    """Calls and tokens of one phase: the pool's counters after minus before."""

    before: dict[str, Any]

    @staticmethod
    def snapshot(pool: ExpertPool | None) -> dict[str, Any]:
        return pool.usage() if pool is not None else {}

    def actual(self, pool: ExpertPool | None, seconds: float) -> dict[str, Any]:
        after = self.snapshot(pool)
        totals = {"calls": 0, "prompt_tokens": 0, "generated_tokens": 0, "cached": 0,
                  "failures": 0}
        for name, usage in after.items():
            old = self.before.get(name)
            for key, attr in (("calls", "requests"), ("prompt_tokens", "prompt_tokens"),
                              ("generated_tokens", "generated_tokens"), ("cached", "cached"),
                              ("failures", "failures")):
                totals[key] += getattr(usage, attr) - (getattr(old, attr) if old else 0)
        totals["seconds"] = round(seconds, 1)
        return totals


_SIZE_KNOBS = {
    "filter": "mine.samples_per_config (or the mine.survival rates)",
    "compress": "filter.min_difficulty down or mine.samples_per_config up",
}
"""Phases whose kept rows should reach `compress.size`, and the knob to turn when they don't."""


def _shortfall(phase: Phase, config: ArenaConfig, kept: int) -> str | None:
    """The card and log note when `phase` kept fewer rows than the next phase needs."""
    from warriorcoder.planning import shortfall_note

    knob = _SIZE_KNOBS.get(phase.name)
    if knob is None:
        return None
    return shortfall_note(kept, config.compress.size, phase.name, knob)


def plan_phase(phase: str | Phase, config: ArenaConfig, parent_rows: datasets.Dataset | None,
               rows_in: int | None = None) -> PhasePlan:
    """The phase's cost plan from the config and (where given) its parent's real rows."""
    declared = phase if isinstance(phase, Phase) else get_phase(phase)
    if declared.plan is None:
        return PhasePlan(calls=0, prompt_tokens=0, generated_tokens=0, rows_out=rows_in or 0)
    return declared.plan(config, parent_rows, rows_in)


def measured_seconds_per_call(store: HubStore, phase: str) -> float | None:
    """Seconds per LLM call the latest version of `phase` took to build, from its card's
    recorded cost (None when unknown: no version, no calls sent, an unreadable card)."""
    lineage = store.lineage(store.latest(get_phase(phase).dataset)) or {}
    actual = lineage.get("cost", {}).get("actual") or {}
    calls, seconds = actual.get("calls") or 0, actual.get("seconds")
    return seconds / calls if calls and seconds else None


def plan_pipeline(config: ArenaConfig, until: str = PHASES[-1]) -> list[tuple[str, PhasePlan]]:
    """Plans of mine .. `until`, each phase's input estimated from the previous plan."""
    plans = []
    rows_in: int | None = None
    for name in PHASES[: PHASES.index(until) + 1]:
        plan = plan_phase(name, config, None, rows_in)
        plans.append((name, plan))
        rows_in = plan.rows_out
    return plans


def run_phase(
    phase: str,
    config: ArenaConfig,
    *,
    input_version: str | None = None,
    store: HubStore | None = None,
    pool: ExpertPool | None = None,
    force: bool = False,
) -> VersionRef:
    """Run one phase on its parent's pinned version and publish the new version with its card.

    Reuses (does not republish) the latest version when it was built from the same inputs,
    unless `force`. Raises `PhaseError`, `InputDatasetError` (the parent lacks columns),
    `HubError` and the generation errors (`GenerationFailed` after every reachable call)."""
    from warriorcoder.hub import open_store

    declared = get_phase(phase)
    if declared.build is None:  # pragma: no cover - every registered phase has a builder
        raise PhaseError(f"phase {phase!r} has no builder")
    store = store or open_store(config.hub)
    parent = resolve_parent(store, declared, input_version)
    rows = store.load(parent.dataset, parent.version) if parent is not None else None
    if rows is not None and parent is not None:
        declared.check_columns(rows, parent.spec())
    phase_input = PhaseInput(config=config, rows=rows, parent=parent,
                             pool_factory=(lambda: pool) if pool is not None else None,
                             parent_card=store.lineage(parent))
    try:
        return _build_and_publish(declared, config, store, phase_input, parent, force)
    finally:
        if "pool" in phase_input.__dict__ and pool is None:  # the pool this phase started
            phase_input.pool.close()


def _build_and_publish(phase: Phase, config: ArenaConfig, store: HubStore,
                       phase_input: PhaseInput, parent: VersionRef | None,
                       force: bool) -> VersionRef:
    """The latest version when it was built from the same inputs, else build and publish."""
    experts: list[dict[str, Any]] | None = []
    if phase.uses_experts:
        try:
            experts = expert_records(phase_input)
        except GenerationError as error:  # the build still makes every call it can reach
            logger.warning("%s: cannot identify every expert (%s); not checking for a reusable "
                           "version", phase.name, error)
            experts = None
    print_ = None if experts is None else fingerprint(phase, config, parent, experts)

    def release() -> Release:
        return _build(phase, config, phase_input, parent, experts, store)

    ref = store.publish_artifact(phase.dataset, print_, release, force=force)
    if not ref.reused:
        logger.info("%s: published %s %s", phase.name, ref.repo_id, ref.version)
    return ref


def _build(phase: Phase, config: ArenaConfig, phase_input: PhaseInput,
           parent: VersionRef | None, experts: list[dict[str, Any]] | None,
           store: HubStore | None = None) -> Release:
    """Run the builder; its rows, card (with cost and fingerprint) and figures."""
    from warriorcoder.hub import Release

    plan = plan_phase(phase, config, phase_input.rows)
    logger.info("%s: plan: %d LLM calls, ~%d prompt and <= %d generated tokens, ~%d rows",
                phase.name, plan.calls, plan.prompt_tokens, plan.generated_tokens, plan.rows_out)
    pool = phase_input.pool if phase.uses_experts else None
    usage = _Usage(_Usage.snapshot(pool))
    started = time.monotonic()
    assert phase.build is not None
    output = phase.build(phase_input)
    actual = usage.actual(pool, time.monotonic() - started)
    actual["rows_out"] = len(output.dataset)
    if note := _shortfall(phase, config, len(output.dataset)):
        logger.warning("%s: %s", phase.name, note)
        output.content.sections.append(CardSection("Fewer rows than planned", note + "."))
    output.content.cost = {"planned": plan.to_dict(), "actual": actual}
    if phase.name == PHASES[-1] and store is not None:  # the whole lineage's funnel, cost
        from warriorcoder.report.lineage import lineage_card_sections

        output.content.sections += lineage_card_sections(store, parent, {
            "dataset": phase.dataset, "counts": dict(output.content.counts),
            "cost": output.content.cost})
    if experts is None:
        experts = expert_records(phase_input)
    output.content.fingerprint = fingerprint(phase, config, parent, experts)

    def render(ref: VersionRef) -> str:
        return render_dataset_card(phase=phase, ref=ref, parent=parent, config=config,
                                   dataset=output.dataset, content=output.content)

    logger.info("%s: %d rows built", phase.name, len(output.dataset))
    return Release(render_card=render, rows=output.dataset, files=output.content.files())
