"""`select` -> `sft_final`: the best response per instruction by local and global score (eq. 5).

Local score (eq. 2): a candidate's vote share in its battle, a Tie vote half to each side.
Global score: the rating chosen by `select.rating` (the paper's online Elo in a recorded seeded
order by default; or its mean over random orders; or Bradley-Terry), turned into the Elo
expectation against the opponent (eq. 3). Final score (eq. 5): alpha * expectation + (1 - alpha)
* local, averaged over a candidate's battles on the instruction (one battle each in the paper's
pairwise setting, where this is the paper's sum). The best candidate's response is the target;
an answer cut by the length limit is not, unless `select.allow_truncated_targets`.

The arithmetic is `scoring.standings.standings`, which the votes card's preview calls too:
votes are tallied under `judge.bias_policy`, and each target is chosen again under
alternative ratings to report how settled it is (`target_stability`, `target_flips`).

Part of this phase: `preference.py`, the decided battles as TRL preference pairs (the
`preference` config of `sft_final`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import datasets

from warriorcoder.builders.base import Phase, PhaseInput, PhaseOutput, PhasePlan, rows_dataset
from warriorcoder.builders.select.preference import CONFIG_NAME as PREFERENCE
from warriorcoder.builders.select.preference import preference_pairs, preference_section
from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards import CardContent, CardSection
from warriorcoder.dataset_cards.arena_figures import arena_figure_sections
from warriorcoder.dataset_cards.arena_sections import (
    judges_section,
    ratings_section,
    target_code_section,
    targets_section,
    win_rate_section,
)
from warriorcoder.dataset_cards.execution_sections import (
    execution_columns,
    targets_tests_section,
)
from warriorcoder.planning import planned_sft_rows, shortfall_note
from warriorcoder.scoring.elo import expected_score
from warriorcoder.scoring.execution_verdicts import (
    RECORD_COLUMNS,
    AnswerRecord,
    answer_records,
    split_kinds,
)
from warriorcoder.scoring.standings import (
    Ratings,
    Standings,
    StandingsOptions,
    Target,
    choose_targets,
    standings,
)
from warriorcoder.scoring.tally import BattleTally, VoteCount

logger = logging.getLogger(__name__)

CANDIDATE = {
    "expert": datasets.Value("string"),
    "role": datasets.Value("string"),
    "response": datasets.Value("string"),
    "truncated": datasets.Value("bool"),
    "local_score": datasets.Value("float64"),
    "rating": datasets.Value("float64"),
    "elo_expected": datasets.Value("float64"),
    "final_score": datasets.Value("float64"),
    "battles": datasets.Value("int32"),
}
FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "instruction": datasets.Value("string"),
    "response": datasets.Value("string"),
    "winner": datasets.Value("string"),
    "winner_role": datasets.Value("string"),
    "truncated": datasets.Value("bool"),
    "judged": datasets.Value("bool"),
    "battles": datasets.Value("int32"),
    "judged_battles": datasets.Value("int32"),
    "local_score": datasets.Value("float64"),
    "elo_expected": datasets.Value("float64"),
    "final_score": datasets.Value("float64"),
    "candidates": datasets.List(CANDIDATE),
    "messages": datasets.List({"role": datasets.Value("string"),
                               "content": datasets.Value("string")}),
    "skipped_truncated": datasets.Value("bool"),
    "target_stability": datasets.Value("float64"),
    "target_flips": datasets.Value("bool"),
})
"""Columns of `sft_final`: one row per instruction. The top-level scores are the winner's;
`candidates` holds every candidate's response and eq. 2-5 parts; `messages` is the SFT pair.
`skipped_truncated`: the top-scored answer was cut, so the best complete one is the target.
`target_stability`: the share of alternative ratings (other Elo orders, or bootstrap resamples)
under which eq. 5 picks the same target; `target_flips`: it is below 1."""

VOTE_COLUMNS = ("battle_id", "instruction_id", "attacker", "defender", "judge", "order",
                "verdict", "winner", "attempts")
BATTLE_COLUMNS = ("instruction", "response_attacker", "response_defender")

PHASE = Phase(
    name="select",
    dataset="sft_final",
    parent="judge",
    summary="SFT targets: the best response per instruction by local vote share combined with "
    "Elo expectation (alpha-weighted), as chat `messages`.",
    required_columns=(*VOTE_COLUMNS, *BATTLE_COLUMNS),
    features=FEATURES,
    # judge's bias policy weighs the votes here too, but a change to it makes a new votes
    # version (judge's fingerprint holds it), so the parent version already stands for it.
    config_sections=("select",),
)


def standings_options(config: ArenaConfig) -> StandingsOptions:
    """The standings settings of an arena: `judge.bias_*` and `select`'s, as plain values."""
    select = config.select
    return StandingsOptions(
        bias_policy=config.judge.bias_policy, bias_confidence=config.judge.bias_confidence,
        rating=select.rating, k=select.k, initial_rating=select.initial_rating,
        elo_permutations=select.elo_permutations, bootstrap_rounds=select.bootstrap_rounds,
        alpha=select.alpha, allow_truncated_targets=select.allow_truncated_targets,
        stability_orders=select.stability_orders, seed=select.seed,
        execution=config.judge.execution.mode)


@PHASE.planner
def plan(config: ArenaConfig, parent: datasets.Dataset | None, rows_in: int | None) -> PhasePlan:
    """No LLM call: one row per instruction of the parent's battles."""
    if parent is not None:
        rows = len(set(parent["instruction_id"]))
    else:  # rows_in votes of battles_per_instruction battles each, several judges per battle
        judges = max(len(config.judge.judges or config.expert_names) - 2, 1)
        orders = 2 if config.judge.both_orders else 1
        orders += config.judge.execution.mode != "off"  # one execution verdict per judge
        rows = (rows_in or 0) // (judges * orders * config.battle.battles_per_instruction)
    return PhasePlan(calls=0, prompt_tokens=0, generated_tokens=0, rows_out=rows)


def _read(votes: datasets.Dataset) -> tuple[dict[str, list[Any]], dict[str, dict[str, Any]]]:
    """Vote columns, and per battle its first row's instruction, responses and truncation."""
    kind = list(RECORD_COLUMNS) if "kind" in votes.column_names else []  # judge.execution on
    columns = votes.select_columns([*VOTE_COLUMNS, *kind]).to_dict()
    first: dict[str, int] = {}
    for index, battle_id in enumerate(columns["battle_id"]):
        first.setdefault(battle_id, index)
    wanted = [*BATTLE_COLUMNS, *(c for c in ("truncated_attacker", "truncated_defender")
                                  if c in votes.column_names)]
    picked = votes.select(list(first.values())).select_columns(wanted).to_dict()
    battles = {}
    for position, battle_id in enumerate(first):
        battles[battle_id] = {c: picked[c][position] for c in wanted}
    return columns, battles


@PHASE.builder
def build(phase_input: PhaseInput) -> PhaseOutput:
    config = phase_input.config
    select = config.select
    every, battles = _read(phase_input.parent_rows)
    cut = {b: (bool(v.get("truncated_attacker")), bool(v.get("truncated_defender")))
           for b, v in battles.items()}
    result = standings(every, config.expert_names, standings_options(config), cut)
    votes, _ = split_kinds(every)  # the LLM votes (all of them with judge.execution off)
    stability = result.stability or {}
    _warn_missing_reasks(votes, result.count)
    by_instruction: dict[str, list[BattleTally]] = {}
    for tally in result.tallies:
        by_instruction.setdefault(tally.instruction_id, []).append(tally)
    kept = [t for t in result.targets if t.judged or select.keep_unjudged]
    usable = [t for t in kept if select.allow_truncated_targets or not t.all_truncated]
    rows = [_row(target, by_instruction[target.instruction_id], battles, result.ratings,
                 stability[target.instruction_id]) for target in usable]
    features, tested = FEATURES, "kind" in every
    if tested:  # judge.execution on: the target's test record beside it, for a filter
        records = answer_records(execution_columns(phase_input.parent_rows))
        rows = [{**row, **_test_columns(records.get((row["id"], row["winner"])))}
                for row in rows]
        features = datasets.Features({**FEATURES, **TEST_FEATURES})
    passing = [r for r in rows if r["passes_tests"]] if tested and select.require_passing \
        else rows
    dataset = rows_dataset(passing, features=features)
    content = _card(config, votes, result, passing, kept, usable)
    if tested:
        content.sections.insert(1, targets_tests_section(
            rows, records, select.require_passing, len(rows) - len(passing)))
        if select.require_passing:
            content.counts.append(("after keeping only targets that pass their tests",
                                   len(passing)))
    pairs, pair_counts = preference_pairs(result.tallies, battles,
                                          select.allow_truncated_targets)
    if len(pairs):  # the decided battles as DPO pairs: the `preference` config (a config with
        content.configs[PREFERENCE] = pairs  # no rows would not load, so none then)
        content.sections.append(preference_section(pair_counts))
    content.experts = _experts_from_parent(phase_input)
    return PhaseOutput(dataset=dataset, content=content)


TEST_FEATURES = {
    "tests_total": datasets.Value("int32"),
    "tests_passed": datasets.Value("int32"),
    "tests_counted": datasets.Value("int32"),
    "tests_pass_rate": datasets.Value("float64"),
    "passes_tests": datasets.Value("bool"),
}
"""Added to `sft_final` with `judge.execution` on: the target's record on the tests the
uninvolved experts wrote (run: tests it ran; counted: those some answer to the instruction
passed; `passes_tests`: it passed every counted test, and there was one)."""


def _test_columns(record: AnswerRecord | None) -> dict[str, Any]:
    if record is None:
        return {"tests_total": 0, "tests_passed": 0, "tests_counted": 0,
                "tests_pass_rate": 0.0, "passes_tests": False}
    return {"tests_total": record.total, "tests_passed": record.passed,
            "tests_counted": record.counted, "tests_pass_rate": record.pass_rate,
            "passes_tests": record.passes}


def _card(config: ArenaConfig, votes: dict[str, list[Any]], result: Standings,
          rows: list[dict[str, Any]], kept: list[Target], usable: list[Target]) -> CardContent:
    """The sft_final card: where rows were lost, how targets were chosen and how settled they
    are, and the standings behind them."""
    select = config.select
    allow = select.allow_truncated_targets
    tallies, experts, ratings = result.tallies, result.experts, result.ratings
    counts = [("votes", len(votes["battle_id"])), ("battles", len(tallies)),
              ("judged battles", sum(t.judged for t in tallies)),
              ("instructions", len(result.targets))]
    if not select.keep_unjudged:
        counts.append(("after dropping instructions with no valid vote", len(kept)))
    if not allow:
        counts.append(("after dropping instructions whose every answer was cut", len(usable)))
    counts.append(("targets", len(rows)))
    shortfall = shortfall_note(len(rows), planned_sft_rows(config), "select",
                               "mine.samples_per_config (or mine.survival's rates), or lower "
                               "compress.size; see the counts above for where rows were lost")
    if shortfall:
        logger.warning(shortfall)
    both_orders = len(set(zip(votes["battle_id"], votes["judge"], strict=True))) < len(
        votes["battle_id"])
    return CardContent(
        counts=counts,
        sections=[
            *([CardSection("Shortfall", shortfall + ".")] if shortfall else []),
            _selection_section(rows, ratings, select.alpha, _record_changes(config, result)),
            _truncation_section(kept, usable, rows, allow),
            _stability_section(rows, result.drawn or ""),
            targets_section([t for t in result.targets if allow or not t.all_truncated],
                            tallies, experts, select.alpha, select.keep_unjudged),
            ratings_section(tallies, ratings, experts, standings_options(config)),
            win_rate_section(tallies, experts),
            *arena_figure_sections(votes, ratings, experts),
            target_code_section(rows),
            judges_section(votes, tallies, both_orders, result.count),
        ],
    )


def _row(target: Target, group: Sequence[BattleTally], battles: dict[str, dict[str, Any]],
         ratings: Ratings, stability: float) -> dict[str, Any]:
    """One sft_final row: the winner's response as the target, every candidate's scores."""
    responses: dict[str, tuple[str, str, bool]] = {}
    instruction = ""
    for tally in group:
        battle = battles[tally.battle_id]
        instruction = battle["instruction"]
        for role, expert in (("attacker", tally.attacker), ("defender", tally.defender)):
            responses.setdefault(expert, (role, battle[f"response_{role}"],
                                          bool(battle.get(f"truncated_{role}", False))))
    candidates = []
    for expert, score in target.scores.items():
        role, response, truncated = responses[expert]
        candidates.append({
            "expert": expert, "role": role, "response": response, "truncated": truncated,
            "local_score": score.local, "rating": ratings.chosen[expert],
            "elo_expected": score.expected, "final_score": score.final, "battles": score.battles,
        })
    role, response, truncated = responses[target.winner]
    best = target.scores[target.winner]
    return {
        "id": target.instruction_id,
        "instruction": instruction,
        "response": response,
        "winner": target.winner,
        "winner_role": role,
        "truncated": truncated,
        "judged": target.judged,
        "battles": target.battles,
        "judged_battles": target.judged_battles,
        "local_score": best.local,
        "elo_expected": best.expected,
        "final_score": best.final,
        "candidates": candidates,
        "messages": [{"role": "user", "content": instruction},
                     {"role": "assistant", "content": response}],
        "skipped_truncated": target.skipped_truncated,
        "target_stability": stability,
        "target_flips": stability < 1.0,
    }


def _warn_missing_reasks(votes: dict[str, list[Any]], count: VoteCount) -> None:
    """Under `reask`, say so when a flagged judge's votes were never asked in both orders."""
    if count.policy != "reask" or not count.flagged:
        return
    pairs = Counter(zip(votes["battle_id"], votes["judge"], strict=True))
    lacking = [j for j in count.flagged
               if not any(n > 1 for (_, judge), n in pairs.items() if judge == j)]
    if lacking:
        logger.warning("select: judge.bias_policy is reask but judge(s) %s were never re-asked "
                       "in these votes; their votes count 1 each. Run `warriorcoder judge` with "
                       "this config to re-ask them", lacking)


def _truncation_section(kept: list[Target], usable: list[Target], rows: list[dict[str, Any]],
                        allow: bool) -> CardSection:
    skipped = sum(t.skipped_truncated for t in usable)
    dropped = len(kept) - len(usable)
    if allow:
        text = ("`select.allow_truncated_targets: true`: eq. 5 alone chooses, so answers cut by "
                f"`battle.max_new_tokens` can be targets; {sum(r['truncated'] for r in rows)} "
                "are (column `truncated`).")
    else:
        text = ("An answer cut by `battle.max_new_tokens` is never a target "
                "(`select.allow_truncated_targets: false`).\n\n"
                f"- instructions whose top-scored answer was cut, the best complete one chosen "
                f"instead (`skipped_truncated`): {skipped}\n"
                f"- instructions left out because every candidate's answer was cut: {dropped}")
    return CardSection("Truncated answers", text)


def _stability_section(rows: list[dict[str, Any]], drawn: str) -> CardSection:
    flips = sum(r["target_flips"] for r in rows)
    share = flips / len(rows) if rows else 0.0
    unstable = sum(r["target_stability"] < 0.5 for r in rows)
    mean = sum(r["target_stability"] for r in rows) / len(rows) if rows else 1.0
    text = (
        f"Each target was chosen again under {drawn}. Instructions whose target changes under "
        f"at least one of them: **{flips} of {len(rows)} ({share:.1%})** (column "
        f"`target_flips`); under most of them (`target_stability` < 0.5): {unstable}; mean "
        f"agreement {mean:.3f}. Keep only settled targets with "
        "`ds.filter(lambda r: not r['target_flips'])` (or a threshold on `target_stability`)."
    )
    return CardSection("Stability of targets", text)


def _record_changes(config: ArenaConfig, result: Standings) -> int | None:
    """Under `judge.execution.mode: record`, how many targets differ from eq. 5's choice over
    every candidate (None in the other modes)."""
    if config.judge.execution.mode != "record":
        return None
    plain = choose_targets(result.tallies, result.ratings, config.select.alpha,
                           result.truncated, config.select.allow_truncated_targets)
    return sum(a.winner != b.winner for a, b in zip(plain, result.targets, strict=True))


def _selection_section(rows: list[dict[str, Any]], ratings: Ratings, alpha: float,
                       record_changes: int | None = None) -> CardSection:
    truncated = sum(r["truncated"] for r in rows)
    changed = sum(1 for r in rows if not r["skipped_truncated"] and r["local_score"] < max(
        c["local_score"] for c in r["candidates"]))
    experts = sorted(ratings.chosen, key=lambda e: -ratings.chosen[e])
    strongest = experts[0] if experts else None
    example = ""
    if len(experts) >= 2:
        x = expected_score(ratings.chosen[experts[0]], ratings.chosen[experts[-1]])
        example = (f" For scale: the Elo expectation of `{strongest}` against `{experts[-1]}` is "
                   f"{x:.3f}.")
    text = (
        f"Final score (eq. 5) = {alpha:g} x Elo expectation (eq. 3, ratings: "
        f"`{ratings.method}`) + {1 - alpha:g} x local vote share (eq. 2), averaged over the "
        "candidate's battles on the instruction; the best candidate's response is `response` "
        "and `messages` (user, assistant) is the SFT pair. Every candidate's response and "
        f"scores are kept in `candidates` (for preference training).{example}\n\n"
        f"- targets whose winner had the lower vote share (the global score decided): {changed}\n"
        f"- targets cut by the length limit (`truncated`): {truncated}; filter them out with "
        "`ds.filter(lambda r: not r['truncated'])` if you do not want them"
    )
    if record_changes is not None:
        text += ("\n- `judge.execution.mode: record`: only the candidates with the instruction's "
                 "best test record (tests passed of the counted tests, over all their battles) "
                 "compete; targets that differ from eq. 5's choice over every candidate: "
                 f"{record_changes}")
    return CardSection("Selection", text)


def _experts_from_parent(phase_input: PhaseInput) -> list[dict[str, Any]]:
    """Expert identities as the votes card recorded them, with where each revision came from
    (select makes no LLM call), else as the votes rows name the judges."""
    recorded = (phase_input.parent_card or {}).get("experts")
    if isinstance(recorded, list) and recorded:
        return [dict(record) for record in recorded]
    votes = phase_input.parent_rows
    if "judge_model_id" not in votes.column_names:
        return []
    data = votes.select_columns(["judge", "judge_model_id", "judge_model_revision"]).to_dict()
    seen: dict[str, dict[str, Any]] = {}
    for name, model_id, revision in zip(data["judge"], data["judge_model_id"],
                                        data["judge_model_revision"], strict=True):
        seen.setdefault(name, {"name": name, "model_id": model_id, "model_revision": revision})
    return [seen[name] for name in sorted(seen)]
