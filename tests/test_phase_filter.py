"""`filter` -> `filtered` against the TGI test server with three simulated experts."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

from tests.support.sim_instructions import (
    CONTAMINATED,
    FLAKY,
    ONE_JUDGE_INVALID,
    SimArena,
    judge_offset,
    sim_arena,
)
from warriorcoder.builders.filter import DIFFICULTY_FIGURE, spearman
from warriorcoder.hub import open_store
from warriorcoder.runner import run_phase


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory):
    with sim_arena(tmp_path_factory.mktemp("filter")) as arena:
        yield arena


@pytest.fixture(scope="module")
def filtered(arena: SimArena):
    store = open_store(arena.config.hub)
    mined = run_phase("mine", arena.config, store=store)
    ref = run_phase("filter", arena.config, store=store)
    return store, mined, ref, store.load("filtered", ref.version)


def _counts(ref) -> dict[str, int]:
    card = DatasetCard.load(Path(ref.location) / "README.md")
    return card.data.to_dict()["warriorcoder"]["counts"]


def test_counts_after_each_step_match_what_was_planted(arena: SimArena, filtered) -> None:
    _, _, ref, rows = filtered
    p = arena.sim.planted
    mined = p.requests - p.truncated - p.empty
    after_exact = mined - p.exact_duplicates
    after_near = after_exact - p.near_duplicates
    after_decontamination = after_near - p.contaminated
    rated = after_decontamination - p.unrated
    assert _counts(ref) == {
        "mined_raw rows": mined,
        "after normalisation (non-empty)": mined,
        "after exact dedup": after_exact,
        "after near dedup": after_near,
        "after decontamination": after_decontamination,
        "with at least one valid difficulty score": rated,
        "difficulty >= 6": rated - p.below_threshold,
    }
    assert len(rows) == rated - p.below_threshold


def test_kept_rows_record_what_they_absorbed(arena: SimArena, filtered) -> None:
    _, _, _, rows = filtered
    p = arena.sim.planted
    # Every duplicate copies an instruction planted hard enough to be kept.
    assert sum(rows["absorbed"]) == p.exact_duplicates + p.near_duplicates
    assert len(set(rows["instruction"])) == len(rows)


def test_humaneval_prompt_is_dropped_and_reported(arena: SimArena, filtered) -> None:
    _, _, ref, rows = filtered
    assert not any(rows["contaminated"])
    (planted,) = arena.sim.planted_texts[CONTAMINATED]
    assert planted.startswith("Complete the following Python function")
    signature = " ".join(planted.split()[-12:])
    assert not any(signature in " ".join(text.split()) for text in rows["instruction"])
    card = (Path(ref.location) / "README.md").read_text()
    assert "## Benchmark contamination" in card
    assert f"Flagged: {arena.sim.planted.contaminated} of" in card
    assert "HumanEval/" in card


def test_judges_are_the_other_experts_and_scores_are_theirs(arena: SimArena, filtered) -> None:
    _, _, _, rows = filtered
    experts = arena.config.expert_names
    max_attempts = arena.config.filter.max_attempts
    for row in rows:
        judges = [s["judge"] for s in row["difficulty_scores"]]
        assert sorted(judges) == sorted(e for e in experts if e != row["expert"])
        planted = arena.sim.score_of(row["instruction"])
        valid = []
        for score in row["difficulty_scores"]:
            if score["score"] is None:
                assert score["attempts"] == max_attempts
                continue
            expected = min(10, max(1, planted + judge_offset(score["judge"], experts)))
            assert score["score"] == expected
            valid.append(score["score"])
        assert row["valid_ratings"] == len(valid) >= 1
        assert row["difficulty_mean"] == pytest.approx(sum(valid) / len(valid))
        assert row["difficulty_mean"] >= 6
        assert row["difficulty_level"] in ("Good", "Excellent")


def test_unparsable_replies_are_retried_then_recorded_invalid(arena: SimArena, filtered) -> None:
    _, mined_ref, _, rows = filtered
    store = open_store(arena.config.hub)
    mined = store.load("mined_raw", mined_ref.version)
    kind_of = {row["id"]: arena.sim.kind_of(row["expert"], row["seed"]) for row in mined}
    flaky = [r for r in rows if kind_of[r["id"]] == FLAKY]
    invalid = [r for r in rows if kind_of[r["id"]] == ONE_JUDGE_INVALID]
    assert len(flaky) == arena.sim.planted.flaky
    assert len(invalid) == arena.sim.planted.one_judge_invalid
    for row in flaky:
        assert [s["attempts"] for s in row["difficulty_scores"]] == [2, 2]
        assert row["valid_ratings"] == 2
    for row in invalid:
        bad = arena.sim.invalid_judge(row["expert"])
        by_judge = {s["judge"]: s for s in row["difficulty_scores"]}
        assert by_judge[bad]["score"] is None
        assert by_judge[bad]["attempts"] == arena.config.filter.max_attempts
        assert row["valid_ratings"] == 1


def test_card_shows_difficulty_figure_agreement_and_parent(
    arena: SimArena, filtered, tmp_path: Path
) -> None:
    _, mined_ref, ref, rows = filtered
    folder = Path(ref.location)
    assert (folder / DIFFICULTY_FIGURE).read_bytes().startswith(b"\x89PNG")
    card = DatasetCard.load(folder / "README.md")
    parent = card.data.to_dict()["warriorcoder"]["parent"]
    assert parent["repo_id"] == mined_ref.repo_id and parent["version"] == mined_ref.version
    assert f"]({DIFFICULTY_FIGURE})" in card.text
    assert "## Judges' agreement" in card.text and "Spearman" in card.text
    loaded = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path))
    assert loaded.to_list() == rows.to_list()


def test_rerun_sends_no_new_calls(arena: SimArena, filtered) -> None:
    store, _, ref, rows = filtered
    before = arena.served()
    again = run_phase("filter", arena.config, store=store)
    assert arena.served() == before
    assert store.load("filtered", again.version).to_list() == rows.to_list()


def test_kept_contaminated_rows_are_flagged_and_rated(arena: SimArena, filtered) -> None:
    store, _, _, rows = filtered
    config = arena.config.model_copy(deep=True)
    config.filter.drop_contaminated = False
    ref = run_phase("filter", config, store=store)
    kept = store.load("filtered", ref.version)
    flagged = [row for row in kept if row["contaminated"]]
    assert len(flagged) == arena.sim.planted.contaminated
    assert all(row["contamination"]["benchmark"] == "HumanEval" for row in flagged)
    assert all(row["valid_ratings"] == 2 for row in flagged)
    assert len(kept) == len(rows) + len(flagged)


def test_spearman_matches_rank_correlation() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ties take average ranks: ranks (1.5, 1.5, 3) vs (1, 2, 3).
    assert spearman([5, 5, 9], [1, 2, 3]) == pytest.approx(0.8660254)
    assert spearman([3, 3, 3], [1, 2, 3]) != spearman([3, 3, 3], [1, 2, 3])  # nan


def test_configured_judges_restrict_who_rates(arena: SimArena, filtered) -> None:
    store, _, _, _ = filtered
    config = arena.config.model_copy(deep=True)
    config.filter.judges = ["alpha", "beta"]
    before = arena.served()
    rows = store.load("filtered", run_phase("filter", config, store=store).version)
    # Every (instruction, judge, attempt) asked here was asked before: the journal answers.
    assert arena.served() == before
    for row in rows:
        judges = sorted(s["judge"] for s in row["difficulty_scores"])
        assert judges == sorted({"alpha", "beta"} - {row["expert"]})


def test_constrained_scores_ask_for_a_grammar_that_fits_the_token_budget() -> None:
    from warriorcoder.builders.filter import _Rating, difficulty_request
    from warriorcoder.config import FilterConfig
    from warriorcoder.scoring.difficulty import score_regex

    item = _Rating(row_id="r1", judge="beta", instruction="Sort a list.")
    plain = difficulty_request(item, 0, FilterConfig())
    guided = difficulty_request(item, 0, FilterConfig(constrained_scores=True, max_new_tokens=64))
    assert plain.params.grammar is None
    assert guided.params.grammar == {"type": "regex", "value": score_regex(56)}
