"""With `judge.execution` on, the votes table holds LLM votes and execution verdicts side by
side (column `kind`). The judges' statistics on the votes and sft_final cards (the Judges
table, the first-shown figure, the vote counts) count only the LLM votes; the execution
verdicts have their own section and counts, and the report labels them.

The arena of `tests/test_check_arena.py`: every judge always names the answer shown first
(verdict A), while an execution verdict names the side whose answer passes more tests (A or
B), so a table that mixed the two kinds would show a first-shown share below 1."""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

import pytest

from tests.test_check_arena import _config, judge_and_select
from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards.arena_figures import figure_data
from warriorcoder.report import _battles


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    _, votes, chosen = judge_and_select({}, 4, tmp_path_factory.mktemp("execution-cards"))
    return votes, chosen


def _section(content, title: str):
    return next(s for s in content.sections if s.title == title)


def _figure(section, name: str) -> dict:
    return figure_data(next(f for f in section.figures if f.path.endswith(name)).png)


def test_judges_tables_and_first_shown_figures_count_only_llm_votes(built) -> None:
    votes, chosen = built
    rows = votes.dataset.to_dict()
    llm = Counter(j for j, k in zip(rows["judge"], rows["kind"], strict=True) if k == "llm")
    runs = [v for v, k in zip(rows["verdict"], rows["kind"], strict=True) if k == "execution"]
    assert runs and "B" in runs  # execution verdicts that a mixed count would show
    for content in (votes.content, chosen.content):
        assert ("votes", sum(llm.values())) in content.counts
        first = _figure(_section(content, "Judges' first-shown share"), "first_shown.png")
        assert dict(zip(first["judges"], first["decided"], strict=True)) == dict(llm)
        assert first["first"] == first["decided"]  # the judges always name the first answer
        judges = _section(content, "Judges").markdown
        for judge, count in llm.items():
            assert re.search(rf"\| {judge} \| {count} \| 0 \| 0 \| 1\.0+ \| 1\.000 of {count} \|",
                             judges), judges
    # the execution verdicts are shown in their own section and counts
    assert ("execution verdicts", len(runs)) in votes.content.counts
    execution = _section(votes.content, "Execution").markdown
    tally = Counter(w for w, k in zip(rows["winner"], rows["kind"], strict=True)
                    if k == "execution")
    assert f"attacker {tally['attacker']}, defender {tally['defender']}" in execution
    assert _section(chosen.content, "Tests of the targets")


def test_the_report_labels_execution_verdicts(built) -> None:
    votes, _ = built
    columns = votes.dataset.to_dict()
    shown = _battles(columns, {}, 2)
    for battle in shown:
        kinds = [v for v in battle.votes if "(execution" in v["judge"]]
        assert kinds and all(v["shown_first"] == "n/a" for v in kinds)
        assert len(battle.votes) - len(kinds) == sum(
            1 for b, k in zip(columns["battle_id"], columns["kind"], strict=True)
            if b == battle.battle_id and k == "llm")


def test_record_mode_counts_on_the_card_the_targets_its_records_changed(built, tmp_path) -> None:
    """`record` tallies battles as `first` does, so the targets it changed are those that
    differ from `first`'s on the same votes."""
    from warriorcoder.builders import select as select_phase
    from warriorcoder.builders.base import PhaseInput

    votes, first = built
    nowhere = SimpleNamespace(url=lambda name: "http://127.0.0.1:9")  # select sends no call
    data = _config(nowhere, tmp_path)
    data["judge"]["execution"]["mode"] = "record"
    record = select_phase.PHASE.build(PhaseInput(ArenaConfig.model_validate(data),
                                                 votes.dataset, None, None))
    changed = sum(a != b for a, b in zip(first.dataset["winner"], record.dataset["winner"],
                                         strict=True))
    selection = _section(record.content, "Selection").markdown
    assert f"differ from eq. 5's choice over every candidate: {changed}" in selection
    assert "record" not in _section(first.content, "Selection").markdown
