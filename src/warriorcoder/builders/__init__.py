"""The six phase builders, mine to select, and their registry in pipeline order.

Each module declares its phase beside its code (`PHASE`, see `base.Phase`): the dataset it
writes, the parent it reads, the columns it needs and the features it writes, the config
sections it depends on, its builder and its cost planner. A phase with parts is a package
whose `__init__` is the phase and whose submodules are its parts: `judge.execution`
(execution-grounded verdicts) and `select.preference` (TRL preference pairs).

    from warriorcoder.builders import PHASES, get_phase
    get_phase("judge").dataset        # 'votes'
"""

from __future__ import annotations

from warriorcoder.builders import battle, compress, judge, mine, select
from warriorcoder.builders import filter as filter_
from warriorcoder.builders.base import Phase
from warriorcoder.errors import PhaseError

REGISTRY: dict[str, Phase] = {
    module.PHASE.name: module.PHASE for module in (mine, filter_, compress, battle, judge, select)
}
"""Phase name -> its declaration, in pipeline order."""

PHASES: tuple[str, ...] = tuple(REGISTRY)
"""Phase names in pipeline order; each writes one dataset."""

__all__ = ["PHASES", "REGISTRY", "Phase", "get_phase", "phase_of_dataset"]


def get_phase(name: str) -> Phase:
    """The declaration of phase `name`; raises `PhaseError` for an unknown name."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise PhaseError(f"unknown phase {name!r}; phases are {', '.join(PHASES)}") from None


def phase_of_dataset(dataset: str) -> Phase | None:
    """The phase that writes `dataset` (e.g. `votes` -> judge), or None."""
    return next((phase for phase in REGISTRY.values() if phase.dataset == dataset), None)
