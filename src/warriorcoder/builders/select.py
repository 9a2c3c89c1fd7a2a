"""`select` -> `sft_final`: the best response per instruction by local and global score (eq. 5).

Local score (eq. 2): a candidate's vote share in its battle, a Tie vote half to each side.
Global score: the rating chosen by `select.rating` (the paper's online Elo in a recorded seeded
order by default; or its mean over random orders; or Bradley-Terry), turned into the Elo
expectation against the opponent (eq. 3). Final score (eq. 5): alpha * expectation + (1 - alpha)
* local, averaged over a candidate's battles on the instruction (one battle each in the paper's
pairwise setting, where this is the paper's sum). The best candidate's response is the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets

from warriorcoder.builders.base import PhaseError, PhaseInput, PhaseOutput
from warriorcoder.builders.ratings import (
    BattleTally,
    Ratings,
    Target,
    choose_targets,
    competitors,
    compute_ratings,
    judges_section,
    ratings_section,
    tally_battles,
    targets_section,
    win_rate_section,
)
from warriorcoder.dataset_cards import CardContent, CardSection
from warriorcoder.scoring.elo import expected_score

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
})
"""Columns of `sft_final`: one row per instruction. The top-level scores are the winner's;
`candidates` holds every candidate's response and eq. 2-5 parts; `messages` is the SFT pair."""

VOTE_COLUMNS = ("battle_id", "instruction_id", "attacker", "defender", "judge", "order",
                "verdict", "winner", "attempts")
BATTLE_COLUMNS = ("instruction", "response_attacker", "response_defender")


def _read(votes: datasets.Dataset) -> tuple[dict[str, list[Any]], dict[str, dict[str, Any]]]:
    """Vote columns, and per battle its first row's instruction, responses and truncation."""
    missing = [c for c in (*VOTE_COLUMNS, *BATTLE_COLUMNS) if c not in votes.column_names]
    if missing:
        raise PhaseError(
            f"select: the `votes` dataset lacks column(s) {missing}; read a version written by "
            "`warriorcoder judge`"
        )
    if len(votes) == 0:
        raise PhaseError("select: the `votes` version has no rows; nothing to select from")
    columns = votes.select_columns(list(VOTE_COLUMNS)).to_dict()
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


def build(phase_input: PhaseInput) -> PhaseOutput:
    config = phase_input.config
    select = config.select
    votes, battles = _read(phase_input.parent_rows)
    experts = competitors(config.expert_names, votes)
    tallies = tally_battles(votes)
    ratings = compute_ratings(tallies, experts, select)
    targets = choose_targets(tallies, ratings, select.alpha)
    by_instruction: dict[str, list[BattleTally]] = {}
    for tally in tallies:
        by_instruction.setdefault(tally.instruction_id, []).append(tally)
    rows = [_row(target, by_instruction[target.instruction_id], battles, ratings)
            for target in targets if target.judged or select.keep_unjudged]
    dataset = datasets.Dataset.from_list(rows, features=FEATURES)
    unjudged = sum(not t.judged for t in targets)
    counts = [("votes", len(votes["battle_id"])), ("battles", len(tallies)),
              ("judged battles", sum(t.judged for t in tallies)),
              ("instructions", len(targets))]
    if not select.keep_unjudged:
        counts.append(("after dropping instructions with no valid vote", len(targets) - unjudged))
    counts.append(("targets", len(rows)))
    both_orders = len(set(zip(votes["battle_id"], votes["judge"], strict=True))) < len(
        votes["battle_id"])
    content = CardContent(
        counts=counts,
        sections=[
            _selection_section(rows, ratings, select.alpha),
            targets_section(targets, tallies, experts, select.alpha, select.keep_unjudged),
            ratings_section(tallies, ratings, experts, select),
            win_rate_section(tallies, experts),
            judges_section(votes, tallies, both_orders),
        ],
        experts=_experts_from_parent(phase_input),
    )
    return PhaseOutput(dataset=dataset, content=content)


def _row(target: Target, group: Sequence[BattleTally], battles: dict[str, dict[str, Any]],
         ratings: Ratings) -> dict[str, Any]:
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
    }


def _selection_section(rows: list[dict[str, Any]], ratings: Ratings, alpha: float) -> CardSection:
    truncated = sum(r["truncated"] for r in rows)
    changed = sum(1 for r in rows if r["local_score"] < max(c["local_score"]
                                                            for c in r["candidates"]))
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
    return CardSection("Selection", text)


def _experts_from_parent(phase_input: PhaseInput) -> list[dict[str, Any]]:
    """Expert identities as the judges recorded them (select makes no LLM call)."""
    votes = phase_input.parent_rows
    if "judge_model_id" not in votes.column_names:
        return []
    data = votes.select_columns(["judge", "judge_model_id", "judge_model_revision"]).to_dict()
    seen: dict[str, dict[str, Any]] = {}
    for name, model_id, revision in zip(data["judge"], data["judge_model_id"],
                                        data["judge_model_revision"], strict=True):
        seen.setdefault(name, {"name": name, "model_id": model_id, "model_revision": revision})
    return [seen[name] for name in sorted(seen)]
