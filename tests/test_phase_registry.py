"""The phase registry: every phase reads columns its parent declares it writes, and writes the
features it declares (checked on the simulated-arena pipeline's datasets)."""

from __future__ import annotations

import pytest

from tests.test_byte_identical import run_pipeline
from warriorcoder.builders import PHASES, REGISTRY, get_phase, phase_of_dataset
from warriorcoder.errors import PhaseError


def test_phases_chain_in_pipeline_order_and_declare_their_features() -> None:
    assert PHASES == ("mine", "filter", "compress", "battle", "judge", "select")
    for previous, name in zip((None, *PHASES), PHASES, strict=False):
        phase = get_phase(name)
        assert phase.parent == previous, name
        assert phase.features is not None, f"{name} declares no output features"
        assert phase_of_dataset(phase.dataset) is phase


@pytest.mark.parametrize("name", [p for p in PHASES if REGISTRY[p].parent is not None])
def test_required_columns_are_among_the_parents_declared_features(name: str) -> None:
    phase = get_phase(name)
    parent = get_phase(phase.parent)
    assert parent.features is not None
    missing = set(phase.required_columns) - set(parent.features)
    assert not missing, f"{name} requires {sorted(missing)}, which {parent.name} does not write"


def test_an_unknown_phase_is_refused_by_name() -> None:
    with pytest.raises(PhaseError, match="unknown phase 'judges'; phases are mine, filter"):
        get_phase("judges")


@pytest.mark.slow
def test_each_builder_writes_the_features_it_declares(tmp_path) -> None:
    store = run_pipeline(tmp_path)
    for name in PHASES:
        phase = get_phase(name)
        ref = store.latest(phase.dataset)
        assert ref is not None, phase.dataset
        assert store.load(phase.dataset, ref.version).features == phase.features, name
