"""The arena's figures on the cards: each PNG carries the numbers it plots, and those numbers
are recomputed here from the published rows and cards of a simulated lineage (not from
pixels). Ranks follow Chatbot Arena's rule; intervals are Wilson's; equal data give equal
bytes."""

from __future__ import annotations

import dataclasses
import io
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image

from tests.support.sim_lineage import sim_lineage
from warriorcoder.builders.select import VOTE_COLUMNS, standings_options
from warriorcoder.dataset_cards.arena_figures import (
    DATA_KEY,
    arena_ranks,
    cost_figure,
    figure_data,
    first_shown_figure,
    pass_at_1_figure,
    ratings_figure,
    wilson_interval,
)
from warriorcoder.scoring.standings import METHODS, standings

ARENA_FIGURES = ("ratings", "battle_counts", "first_shown")


@pytest.fixture(scope="module")
def lineage(tmp_path_factory: pytest.TempPathFactory):
    return sim_lineage(tmp_path_factory.mktemp("figures"))


def _png(store, name: str, figure: str) -> bytes:
    ref = store.latest(name)
    return (Path(ref.location) / "figures" / f"{figure}.png").read_bytes()


# ---- the rules, on hand-made numbers ------------------------------------------------------


def test_ranks_count_only_experts_whose_whole_interval_is_above() -> None:
    intervals = {"a": (1050.0, 1150.0), "b": (960.0, 1060.0), "c": (850.0, 950.0),
                 "d": (950.0, 1000.0), "e": (math.nan, math.nan)}
    # c is behind a (1050 > 950) and b (960 > 950); d's lower bound 950 is not above c's 950
    assert arena_ranks(intervals) == {"a": 1, "b": 1, "c": 3, "d": 2, "e": 1}


def test_wilson_interval_is_the_textbook_formula() -> None:
    z = 1.959963984540054
    for k, n in [(10, 18), (0, 7), (12, 12), (3, 4)]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        low, high = wilson_interval(k, n)
        assert low == pytest.approx(max(centre - half, 0.0), abs=1e-9)
        assert high == pytest.approx(min(centre + half, 1.0), abs=1e-9)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_a_figure_is_a_function_of_its_data_and_carries_it() -> None:
    def make() -> bytes:
        return ratings_figure({"a": 1010.5, "b": 990.0}, {"a": (1000.0, 1020.0),
                                                          "b": (980.0, 999.0)},
                              "online Elo").figure.png

    first, second = make(), make()
    assert first == second
    info = Image.open(io.BytesIO(first)).info
    assert "Software" not in info and not any("date" in key.lower() for key in info)
    assert figure_data(first)["rank"] == [1, 2]
    other = ratings_figure({"a": 1010.5, "b": 990.0}, {"a": (1000.0, 1020.0),
                                                       "b": (980.0, 1001.0)}, "online Elo")
    assert figure_data(other.figure.png)["rank"] == [1, 1] and other.figure.png != first
    with pytest.raises(ValueError, match=DATA_KEY):
        figure_data(_plain_png())


def _plain_png() -> bytes:
    """A PNG without our text chunk."""
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_rating_outside_its_few_round_interval_is_drawn_and_its_interval_kept(lineage
                                                                                ) -> None:
    """With few bootstrap rounds a percentile interval can miss its point estimate; the figure
    is still drawn (its bar starts at the point) and keeps the interval as computed."""
    config, store = lineage
    votes = store.load("votes", store.latest("votes").version)
    columns = votes.select_columns(list(VOTE_COLUMNS)).to_dict()
    outside = 0
    for rounds in (2, 3, 4, 5):
        options = dataclasses.replace(standings_options(config), bootstrap_rounds=rounds)
        ratings = standings(columns, config.expert_names, options, stability=False).ratings
        interval = ratings.intervals[ratings.method]
        outside += sum(not low <= ratings.chosen[e] <= high
                       for e, (low, high) in interval.items() if not math.isnan(low))
        plotted = ratings_figure(ratings.chosen, interval, METHODS[ratings.method])
        for expert, low in zip(plotted.data["experts"], plotted.data["low"], strict=True):
            if low is not None:
                assert low == pytest.approx(interval[expert][0], abs=1e-5)
    assert outside  # the case that crashed ("xerr must not contain negative values")
    above = ratings_figure({"a": 1030.0, "b": 990.0},
                           {"a": (1000.0, 1020.0), "b": (995.0, 1005.0)}, "online Elo")
    assert above.data["high"][0] == 1020.0 and "| 1020.0 |" in above.table


def test_first_shown_and_pass_at_1_and_cost_tables_hold_the_plotted_numbers() -> None:
    first = first_shown_figure({"j1": (9, 10), "j2": (0, 0)})
    assert first.data["share"] == [0.9, None] and "| j1 | 9 | 10 | 0.900 |" in first.table
    scores = {"humaneval": {"pass@1": 0.25, "correct": 1, "samples": 4, "problems": 4}}
    assert pass_at_1_figure(scores).data["pass@1"] == [0.25]
    cost = cost_figure([("votes", {"calls": 60, "prompt_tokens": 9, "generated_tokens": 8},
                         {"calls": 65, "prompt_tokens": 7, "generated_tokens": 6})])
    assert "| votes | 60 / 65 | 9 / 7 | 8 / 6 |" in cost.table


# ---- recomputed from what a run published -------------------------------------------------


@pytest.mark.parametrize("name", ["votes", "sft_final"])
def test_arena_figures_are_recomputed_from_the_published_votes(lineage, name: str) -> None:
    config, store = lineage
    votes = store.load("votes", store.latest("votes").version)
    columns = votes.select_columns(list(VOTE_COLUMNS)).to_dict()
    card = store.read_card(name, store.latest(name).version)
    for figure in ARENA_FIGURES:  # linked by its relative path, its table beside it
        assert f"](figures/{figure}.png)" in card

    # ratings and their intervals: the standings of the published votes
    ratings = standings(columns, config.expert_names, standings_options(config),
                        stability=False).ratings
    plotted = figure_data(_png(store, name, "ratings"))
    assert plotted["method"] == METHODS[ratings.method]
    interval = ratings.intervals[ratings.method]
    for expert, value, low, high in zip(plotted["experts"], plotted["rating"], plotted["low"],
                                        plotted["high"], strict=True):
        assert value == pytest.approx(ratings.chosen[expert], abs=1e-5)
        if math.isnan(interval[expert][0]):
            assert low is None and high is None
        else:
            assert (low, high) == pytest.approx(interval[expert], abs=1e-5)
    bounds = dict(zip(plotted["experts"], zip(plotted["low"], plotted["high"], strict=True),
                      strict=True))
    for expert, rank in zip(plotted["experts"], plotted["rank"], strict=True):
        ahead = sum(1 for other, (low, _) in bounds.items() if other != expert
                    and low is not None and bounds[expert][1] is not None
                    and low > bounds[expert][1])
        assert rank == 1 + ahead
    assert plotted["rank"] == sorted(plotted["rank"])
    assert f"| {plotted['rank'][0]} | {plotted['experts'][0]} |" in card

    # battles per pair: each battle once, either side
    pairs: Counter[frozenset[str]] = Counter()
    for battle_id in set(columns["battle_id"]):
        i = columns["battle_id"].index(battle_id)
        pairs[frozenset((columns["attacker"][i], columns["defender"][i]))] += 1
    counts = figure_data(_png(store, name, "battle_counts"))
    names = counts["experts"]
    assert set(names) >= set(config.expert_names)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            assert counts["counts"][i][j] == (pairs[frozenset((a, b))] if a != b else 0)
    assert counts["battles"] == len(set(columns["battle_id"]))

    # first-shown share: verdict A is the answer shown first
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for judge, verdict in zip(columns["judge"], columns["verdict"], strict=True):
        tally[judge][verdict] += 1
    shares = figure_data(_png(store, name, "first_shown"))
    assert shares["judges"] == sorted(tally)
    for judge, first, decided in zip(shares["judges"], shares["first"], shares["decided"],
                                     strict=True):
        assert (first, decided) == (tally[judge]["A"], tally[judge]["A"] + tally[judge]["B"])
    # the simulated position-biased judge shows: its whole interval lies above 0.5
    gamma = shares["judges"].index("gamma")
    assert shares["low"][gamma] > 0.5


def test_funnel_and_cost_are_recomputed_from_the_lineage_cards(lineage) -> None:
    _, store = lineage
    blocks = []
    for name in ("mined_raw", "filtered", "compressed", "battles", "votes", "sft_final"):
        blocks.append((name, store.lineage(store.latest(name))))
    funnel = figure_data(_png(store, "sft_final", "funnel"))
    expected = [(f"{name}: {step}", rows) for name, block in blocks
                for step, rows in block["counts"].items()]
    assert list(zip(funnel["stages"], funnel["rows"], strict=True)) == expected
    assert funnel["stages"][0].startswith("mined_raw: ")
    assert funnel["stages"][-1] == "sft_final: targets"
    assert funnel["rows"][-1] == len(store.load("sft_final", store.latest("sft_final").version))

    cost = figure_data(_png(store, "sft_final", "cost"))
    assert cost["phases"] == [name for name, _ in blocks]
    for index, (_, block) in enumerate(blocks):
        for key in ("calls", "prompt_tokens", "generated_tokens"):
            assert cost["planned"][key][index] == block["cost"]["planned"][key]
            assert cost["actual"][key][index] == block["cost"]["actual"][key]
    card = store.read_card("sft_final", store.latest("sft_final").version)
    calls = blocks[4][1]["cost"]
    assert re.search(rf"\| votes \| {calls['planned']['calls']} / {calls['actual']['calls']} \|",
                     card)
