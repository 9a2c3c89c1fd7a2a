"""The arena's figures, as Chatbot Arena shows them, each with the table of its numbers.

Pure functions from plain data (vote columns, ratings dicts, card lineage blocks, eval scores)
to a `PlottedFigure`: the PNG (`Figure`, stored in the version's folder and linked from the
card by its relative path), a markdown table of the same numbers, and `data`, exactly what was
plotted. `data` is also written into the PNG as a text chunk (`DATA_KEY`), so a published
figure can be checked against the rows it came from (`figure_data`) without reading pixels.

A PNG is a function of its data: no date, no software version in its metadata, a fixed size
and dpi, a fixed font; equal data give equal bytes (with the same matplotlib).

Ranks are Chatbot Arena's (`arena_ranks`): A is ahead of B only when A's interval lies wholly
above B's (A's lower bound above B's upper bound); an expert's rank is 1 + the number of
experts ahead of it, so experts whose intervals overlap share a rank.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warriorcoder.dataset_cards.card import CardSection, Figure, markdown_table
from warriorcoder.dataset_cards.figures import render_png

DATA_KEY = "warriorcoder:data"
"""The PNG text chunk that holds a figure's plotted numbers as JSON."""
RATINGS_FIGURE = "figures/ratings.png"
BATTLE_COUNT_FIGURE = "figures/battle_counts.png"
FIRST_SHOWN_FIGURE = "figures/first_shown.png"
FUNNEL_FIGURE = "figures/funnel.png"
COST_FIGURE = "figures/cost.png"
PASS_AT_1_FIGURE = "figures/pass_at_1.png"
COST_KEYS = ("calls", "prompt_tokens", "generated_tokens")
_DIGITS = 6


@dataclass(frozen=True)
class PlottedFigure:
    """A figure, the markdown table of its numbers, and the numbers themselves."""

    figure: Figure
    table: str
    data: dict[str, Any]

    def section(self, title: str, text: str) -> CardSection:
        """A card section: `text`, the figure (linked by the card) and the table beside it."""
        return CardSection(title, f"{text}\n\n{self.table}", (self.figure,))


def figure_data(png: bytes) -> dict[str, Any]:
    """The plotted numbers a figure of this module carries; raises `ValueError` for a PNG
    without them."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        text = image.info.get(DATA_KEY)
    if not isinstance(text, str):
        raise ValueError(f"this PNG has no {DATA_KEY!r} text chunk (not an arena figure)")
    return json.loads(text)


def _round(value: float) -> float | None:
    """JSON-safe and stable: rounded, NaN as None."""
    return None if value is None or math.isnan(value) else round(float(value), _DIGITS)


def _plot(path: str, title: str, data: dict[str, Any], draw: Any, size: tuple[float, float],
          table: str) -> PlottedFigure:
    metadata = {"Software": None, DATA_KEY: json.dumps(data, sort_keys=True)}
    with _style():
        png = render_png(draw, size=size, metadata=metadata)
    return PlottedFigure(Figure(path, title, png), table, data)


def _style() -> Any:
    import matplotlib

    return matplotlib.rc_context({"font.family": "DejaVu Sans", "axes.titlesize": 10,
                                  "font.size": 9})


def _wrap_title(ax: Any, title: str, width_in: float) -> None:
    """A title that fits the axes' figure: wrapped at about 13 characters per inch."""
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, max(int(width_in * 13), 20))))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# ---- ratings and ranks --------------------------------------------------------------------


def arena_ranks(intervals: Mapping[str, tuple[float, float]]) -> dict[str, int]:
    """Chatbot Arena's rank per expert: 1 + the number of experts whose lower bound is above
    this expert's upper bound (an expert without an interval is never ahead nor behind)."""
    def ahead(other: str, expert: str) -> bool:
        low, high = intervals[other][0], intervals[expert][1]
        return not (math.isnan(low) or math.isnan(high)) and low > high

    return {e: 1 + sum(ahead(o, e) for o in intervals if o != e) for e in intervals}


def ratings_figure(ratings: Mapping[str, float], intervals: Mapping[str, tuple[float, float]],
                   method: str, path: str = RATINGS_FIGURE) -> PlottedFigure:
    """Each expert's rating with its bootstrap interval, labelled with its rank; by rank, then
    rating (as Chatbot Arena's leaderboard)."""
    ranks = arena_ranks(intervals)
    experts = sorted(ratings, key=lambda e: (ranks[e], -ratings[e], e))
    data = {"method": method, "experts": experts,
            "rating": [_round(ratings[e]) for e in experts],
            "low": [_round(intervals[e][0]) for e in experts],
            "high": [_round(intervals[e][1]) for e in experts],
            "rank": [ranks[e] for e in experts]}
    width = 6.5

    def draw(ax: Any) -> None:
        y = np.arange(len(experts))[::-1]
        values = np.array([ratings[e] for e in experts], dtype=float)
        low = np.array([intervals[e][0] for e in experts], dtype=float)
        high = np.array([intervals[e][1] for e in experts], dtype=float)
        known = ~np.isnan(low)
        # a percentile interval need not hold its point estimate (few bootstrap rounds):
        # the bar then starts at the point, the table keeps the interval as computed
        error = np.clip(np.vstack([values - low, high - values]), 0.0, None)
        ax.errorbar(values[known], y[known], xerr=error[:, known], fmt="o", color="tab:blue",
                    ecolor="tab:blue", capsize=4, label="rating, 95% bootstrap interval")
        if (~known).any():
            ax.plot(values[~known], y[~known], "o", color="tab:gray", label="no interval")
        ax.set_yticks(y, [f"#{ranks[e]}  {e}" for e in experts])
        ax.set_xlabel(f"{method} rating")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        _wrap_title(ax, f"Ratings ({method}) with 95% bootstrap intervals; ranks as Chatbot "
                        "Arena's (overlapping intervals share a rank)", width)

    rows = [[ranks[e], e, _fmt(ratings[e]), _fmt(_round(intervals[e][0])),
             _fmt(_round(intervals[e][1]))] for e in experts]
    table = markdown_table(["rank", "expert", "rating", "95% low", "95% high"], rows)
    return _plot(path, "Ratings and ranks", data, draw, (width, 1.6 + 0.45 * len(experts)),
                 table)


# ---- battle counts -------------------------------------------------------------------------


def battle_pairs(votes: Mapping[str, Sequence[Any]]) -> list[tuple[str, str]]:
    """(attacker, defender) of every battle the vote columns name, once per `battle_id`."""
    seen: dict[str, tuple[str, str]] = {}
    for battle_id, attacker, defender in zip(votes["battle_id"], votes["attacker"],
                                             votes["defender"], strict=True):
        seen.setdefault(battle_id, (attacker, defender))
    return [seen[b] for b in sorted(seen)]


def battle_count_figure(pairs: Sequence[tuple[str, str]], experts: Sequence[str],
                        path: str = BATTLE_COUNT_FIGURE) -> PlottedFigure:
    """The symmetric matrix of battles fought per pair of experts (either side attacking)."""
    names = list(experts) + sorted({n for p in pairs for n in p} - set(experts))
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)), dtype=int)
    for a, b in pairs:
        counts[index[a], index[b]] += 1
        if a != b:
            counts[index[b], index[a]] += 1
    data = {"experts": names, "counts": counts.tolist(), "battles": len(pairs)}
    width = 2.4 + 0.9 * len(names)

    def draw(ax: Any) -> None:
        image = ax.imshow(counts, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        top = counts.max() if counts.size else 0
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if top and counts[i, j] > top / 2 else "black")
        ax.figure.colorbar(image, ax=ax, label="battles")
        _wrap_title(ax, f"Battles per pair of experts ({len(pairs)} in all)", width)

    table = markdown_table(["expert \\ opponent", *names],
                           [[a, *counts[i].tolist()] for i, a in enumerate(names)])
    return _plot(path, "Battle counts", data, draw, (width, 1.8 + 0.8 * len(names)), table)


# ---- judges' position bias -----------------------------------------------------------------


def first_shown_counts(votes: Mapping[str, Sequence[Any]]) -> dict[str, tuple[int, int]]:
    """Per judge (sorted): (verdicts for the answer shown first, valid non-tie verdicts), from
    the vote columns `judge` and `verdict` (positional: A is the answer shown first)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for judge, verdict in zip(votes["judge"], votes["verdict"], strict=True):
        counts[judge][verdict] += 1
    return {j: (counts[j]["A"], counts[j]["A"] + counts[j]["B"]) for j in sorted(counts)}


def wilson_interval(successes: int, trials: int, confidence: float = 0.95
                    ) -> tuple[float, float]:
    """The Wilson score interval of a binomial share (NaN, NaN with no trial)."""
    if trials == 0:
        return (math.nan, math.nan)
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return (float(interval.low), float(interval.high))


def first_shown_figure(counts: Mapping[str, tuple[int, int]], confidence: float = 0.95,
                       path: str = FIRST_SHOWN_FIGURE) -> PlottedFigure:
    """Each judge's share of decided verdicts for the first-shown answer, with its Wilson
    interval; 0.5 is an unbiased judge."""
    judges = sorted(counts)
    shares, lows, highs = [], [], []
    for j in judges:
        first, decided = counts[j]
        low, high = wilson_interval(first, decided, confidence)
        shares.append(first / decided if decided else math.nan)
        lows.append(low)
        highs.append(high)
    data = {"judges": judges, "confidence": confidence,
            "first": [counts[j][0] for j in judges], "decided": [counts[j][1] for j in judges],
            "share": [_round(s) for s in shares], "low": [_round(v) for v in lows],
            "high": [_round(v) for v in highs]}
    width = 6.5

    def draw(ax: Any) -> None:
        y = np.arange(len(judges))[::-1]
        share, low, high = (np.array(v, dtype=float) for v in (shares, lows, highs))
        known = ~np.isnan(share)
        ax.axvline(0.5, color="tab:gray", linestyle="--", linewidth=1, label="unbiased (0.5)")
        ax.errorbar(share[known], y[known],
                    xerr=np.clip(np.vstack([share - low, high - share]), 0.0, None)[:, known],
                    fmt="o", color="tab:orange", capsize=4,
                    label=f"share, {confidence:.0%} Wilson interval")
        ax.set_yticks(y, [f"{j} (n={counts[j][1]})" for j in judges])
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of decided verdicts for the answer shown first")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        _wrap_title(ax, "Position bias: each judge's first-shown share", width)

    rows = [[j, counts[j][0], counts[j][1], _fmt(data["share"][i], 3),
             f"[{_fmt(data['low'][i], 3)}, {_fmt(data['high'][i], 3)}]"]
            for i, j in enumerate(judges)]
    table = markdown_table(["judge", "first shown", "decided", "share",
                            f"{confidence:.0%} Wilson interval"], rows)
    return _plot(path, "First-shown share per judge", data, draw,
                 (width, 1.6 + 0.45 * len(judges)), table)


def llm_votes(votes: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """The judges' votes of a votes table (its execution verdicts left out)."""
    from warriorcoder.scoring.execution_verdicts import split_kinds

    return split_kinds(votes)[0]


def arena_figure_sections(votes: Mapping[str, Sequence[Any]], ratings: Any,
                          experts: Sequence[str]) -> list[CardSection]:
    """The votes and sft_final cards' arena figures from the vote columns and the standings'
    `Ratings` (the method eq. 5 uses): ratings with intervals and ranks, the battle-count
    matrix and each judge's first-shown share, each with its table."""
    from warriorcoder.scoring.standings import METHODS

    method = METHODS.get(ratings.method, ratings.method)
    votes = llm_votes(votes)
    ranked = ratings_figure(ratings.chosen, ratings.intervals[ratings.method], method)
    count = battle_count_figure(battle_pairs(votes), experts)
    first = first_shown_figure(first_shown_counts(votes))
    return [
        ranked.section("Ratings and ranks", (
            f"The {method} ratings (the ones eq. 5 uses) with their 95% bootstrap intervals. "
            "Ranks as Chatbot Arena's: an expert is ahead of another only when its lower bound "
            "is above the other's upper bound; rank = 1 + the number of experts ahead, so "
            "experts whose intervals overlap share a rank.")),
        count.section("Battle counts", (
            "Battles fought by each pair of experts (every battle, judged or not; either side "
            "attacking).")),
        first.section("Judges' first-shown share", (
            "Of each judge's valid, non-tie verdicts, the share that picked the answer shown "
            "first (0.5: no position bias), with its 95% Wilson score interval (per judge, not "
            "corrected for the number of judges; the Judges section's test is).")),
    ]


# ---- across the lineage --------------------------------------------------------------------


def funnel_stages(lineages: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(`<dataset>: <step>`, rows) for every counted step of every card's lineage
    block, oldest dataset first (each block: `dataset`, `version`, `counts`)."""
    stages = []
    for block in lineages:
        name = str(block.get("dataset"))
        for step, rows in (block.get("counts") or {}).items():
            stages.append((f"{name}: {step}", int(rows)))
    return stages


def funnel_figure(stages: Sequence[tuple[str, int]], path: str = FUNNEL_FIGURE
                  ) -> PlottedFigure:
    """Rows after each step (e.g. mined_raw's to sft_final's), as horizontal bars, the first
    on top."""
    labels = [label for label, _ in stages]
    rows = [n for _, n in stages]
    data = {"stages": labels, "rows": rows}
    width = 8.0

    def draw(ax: Any) -> None:
        y = np.arange(len(stages))[::-1]
        bars = ax.barh(y, rows, color="tab:green")
        ax.bar_label(bars, [str(n) for n in rows], padding=3, fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_xlabel("rows")
        ax.set_xlim(0, max(rows or [1]) * 1.15)
        ends = [label.split(":")[0] for label in (labels[:1] + labels[-1:])]
        _wrap_title(ax, "Rows at each step, " + " to ".join(dict.fromkeys(ends)), width)

    table = markdown_table(["step", "rows"], [[label, n] for label, n in stages])
    return _plot(path, "Funnel", data, draw, (width, 1.4 + 0.32 * max(len(stages), 1)), table)


def cost_by_phase(lineages: Sequence[Mapping[str, Any]]
                  ) -> list[tuple[str, dict[str, int], dict[str, int]]]:
    """(dataset, planned, actual) calls and tokens (`COST_KEYS`) of every card that recorded
    its cost, oldest first."""
    result = []
    for block in lineages:
        cost = block.get("cost") or {}
        planned, actual = cost.get("planned"), cost.get("actual")
        if not planned or actual is None:
            continue
        result.append((str(block.get("dataset")),
                       {k: int(planned.get(k) or 0) for k in COST_KEYS},
                       {k: int(actual.get(k) or 0) for k in COST_KEYS}))
    return result


def cost_figure(phases: Sequence[tuple[str, Mapping[str, int], Mapping[str, int]]],
                path: str = COST_FIGURE) -> PlottedFigure:
    """Planned (hatched) against actual (solid) calls, prompt and generated tokens per phase,
    on a symmetric log scale (a phase with no call shows no bar)."""
    names = [name for name, _, _ in phases]
    data = {"phases": names,
            "planned": {k: [int(p[k]) for _, p, _ in phases] for k in COST_KEYS},
            "actual": {k: [int(a[k]) for _, _, a in phases] for k in COST_KEYS}}
    width = max(6.5, 1.4 + 1.2 * len(phases))
    colors = {"calls": "tab:blue", "prompt_tokens": "tab:orange",
              "generated_tokens": "tab:green"}

    def draw(ax: Any) -> None:
        x = np.arange(len(names))
        bar = 0.8 / (2 * len(COST_KEYS))
        for k_index, key in enumerate(COST_KEYS):
            for s_index, side in enumerate(("planned", "actual")):
                offset = (2 * k_index + s_index - len(COST_KEYS) + 0.5) * bar
                ax.bar(x + offset, data[side][key], bar, color=colors[key],
                       alpha=0.45 if side == "planned" else 1.0,
                       hatch="//" if side == "planned" else None,
                       label=f"{key.replace('_', ' ')}, {side}")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel("count (symmetric log scale)")
        ax.legend(fontsize=7, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
        _wrap_title(ax, "LLM calls and tokens per phase: planned against actual", width)

    rows = [[name, *(f"{p[k]} / {a[k]}" for k in COST_KEYS)] for name, p, a in phases]
    table = markdown_table(["phase", *(f"{k.replace('_', ' ')} (planned / actual)"
                                       for k in COST_KEYS)], rows)
    return _plot(path, "Cost per phase", data, draw, (width, 4.6), table)


def lineage_sections(lineages: Sequence[Mapping[str, Any]]) -> list[CardSection]:
    """The funnel and the per-phase cost of a lineage (card blocks, mined_raw first)."""
    funnel = funnel_figure(funnel_stages(lineages))
    cost = cost_figure(cost_by_phase(lineages))
    return [
        funnel.section("Funnel: mined_raw to sft_final", (
            "Rows after each counted step of every dataset this version descends from, as "
            "their cards record them (the version each one read is pinned in its card).")),
        cost.section("Cost per phase", (
            "LLM calls and tokens per phase, planned before any call against what the experts "
            "reported (calls answered from the request journal were not sent, so they are not "
            "counted as actual).")),
    ]


# ---- evaluations ---------------------------------------------------------------------------


def pass_at_1_figure(scores: Mapping[str, Mapping[str, float | int]],
                     path: str = PASS_AT_1_FIGURE) -> PlottedFigure:
    """pass@1 per benchmark (EvalPlus' names: `humaneval`, `humaneval+`, ...), in order."""
    names = list(scores)
    data = {"benchmarks": names,
            "pass@1": [_round(float(scores[n].get("pass@1", math.nan))) for n in names],
            "correct": [int(scores[n].get("correct", 0)) for n in names],
            "samples": [int(scores[n].get("samples", 0)) for n in names],
            "problems": [int(scores[n].get("problems", 0)) for n in names]}
    width = max(5.0, 2.0 + 1.1 * len(names))

    def draw(ax: Any) -> None:
        values = [v if v is not None else 0.0 for v in data["pass@1"]]
        bars = ax.bar(names, values, color="tab:purple")
        ax.bar_label(bars, [_fmt(v, 3) for v in data["pass@1"]], padding=2, fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("pass@1")
        _wrap_title(ax, "pass@1 per benchmark", width)

    rows = [[n, _fmt(data["pass@1"][i], 3), data["correct"][i], data["samples"][i],
             data["problems"][i]] for i, n in enumerate(names)]
    table = markdown_table(["benchmark", "pass@1", "correct", "samples", "problems"], rows)
    return _plot(path, "pass@1 per benchmark", data, draw, (width, 3.6), table)


def pass_at_1_lines(scores: Mapping[str, Mapping[str, float | int]]) -> list[str]:
    """The evals card's markdown for the pass@1 figure (`PASS_AT_1_FIGURE`, published beside
    the rows) and its table."""
    plotted = pass_at_1_figure(scores)
    return ["", f"![{plotted.figure.title}]({plotted.figure.path})", "", plotted.table]
