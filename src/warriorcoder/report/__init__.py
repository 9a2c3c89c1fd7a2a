"""`warriorcoder report`: one self-contained HTML page for a lineage.

    html = build_report(store, "sft_final@v3")

Follows the cards from the given version back to mined_raw (and on to the model and evals
versions built from it): the funnel of rows, planned against actual cost per phase, every
figure the cards link (inline), and a few battles shown whole, votes and target included.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from warriorcoder.dataset_cards.arena_figures import (
    COST_KEYS,
    PlottedFigure,
    cost_by_phase,
    cost_figure,
    funnel_figure,
    funnel_stages,
    pass_at_1_figure,
)
from warriorcoder.hub import EVALS, MODEL, HubStore
from warriorcoder.lineage import package_version
from warriorcoder.report.lineage import (
    Node,
    ReportError,
    ancestors,
    built_from,
    card_images,
    read_file,
)
from warriorcoder.report.page import ReportPage, ShownBattle, ShownFigure, render

__all__ = ["ReportError", "build_report", "pick_battles"]

VOTES, SFT_FINAL = "votes", "sft_final"


def _shown(plotted: PlottedFigure, source: str) -> ShownFigure:
    lines = [line for line in plotted.table.splitlines() if line.startswith("|")]
    cells = [[c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
             for line in lines]
    header, rows = (cells[0], cells[2:]) if len(cells) >= 2 else ([], [])
    return ShownFigure(plotted.figure.title, source, plotted.figure.png, header, rows)


def _cost_rows(blocks: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for block in blocks:
        cost = block.get("cost") or {}
        planned, actual = cost.get("planned") or {}, cost.get("actual") or {}
        if not planned and not actual:
            continue
        row: list[Any] = [block.get("dataset")]
        for key in COST_KEYS:
            row += [planned.get(key, "-"), actual.get(key, "-")]
        row += [actual.get("cached", "-"), actual.get("failures", "-"),
                actual.get("seconds", "-")]
        rows.append(row)
    return rows


def _card_figures(store: HubStore, nodes: Sequence[Node], seen: set[str],
                  notes: list[str]) -> list[ShownFigure]:
    """Every image the cards link, read from its version's folder; the same bytes once."""
    shown = []
    for node in nodes:
        for title, path in card_images(node.card):
            png = read_file(store, node.ref, path)
            if png is None:
                notes.append(f"{node.ref.spec()} links {path}, which is not in that version")
                continue
            digest = hashlib.sha256(png).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            shown.append(ShownFigure(title, f"{node.name} {node.ref.version} card, {path}", png))
    return shown


def pick_battles(votes: Mapping[str, Sequence[Any]], count: int) -> list[str]:
    """Up to `count` battle ids, in id order, a battle of each majority outcome (attacker,
    defender, tie) first, so the page shows the kinds of result the arena saw."""
    outcome: dict[str, Counter[str]] = defaultdict(Counter)
    for battle_id, winner in zip(votes["battle_id"], votes["winner"], strict=True):
        outcome[battle_id][winner] += 1
    chosen: list[str] = []
    for kind in ("attacker", "defender", "tie"):
        for battle_id in sorted(outcome):
            top = outcome[battle_id].most_common(1)[0][0]
            if top == kind and battle_id not in chosen:
                chosen.append(battle_id)
                break
    chosen += [b for b in sorted(outcome) if b not in chosen]
    return chosen[:count]


def _battles(votes: Mapping[str, Sequence[Any]], targets: Mapping[str, Mapping[str, Any]],
             count: int) -> list[ShownBattle]:
    rows = [dict(zip(votes, values, strict=True)) for values in zip(*votes.values(),
                                                                      strict=True)]
    shown = []
    for battle_id in pick_battles(votes, count):
        group = [r for r in rows if r["battle_id"] == battle_id]
        first = group[0]
        shown.append(ShownBattle(
            battle_id=battle_id,
            instruction=first.get("instruction") or "",
            attacker=first["attacker"],
            defender=first["defender"],
            answers={"attacker": first.get("response_attacker") or "",
                     "defender": first.get("response_defender") or ""},
            truncated={"attacker": bool(first.get("truncated_attacker")),
                       "defender": bool(first.get("truncated_defender"))},
            votes=[{"judge": r["judge"] if r.get("kind", "llm") == "llm"
                    else f"{r['judge']} (execution: tests it wrote, run)",
                    "shown_first": "n/a" if r.get("kind", "llm") != "llm"
                    else r["attacker"] if r["order"] == "attacker_first" else r["defender"],
                    "verdict": r.get("verdict"), "winner": r["winner"],
                    "attempts": r.get("attempts"), "judgement": r.get("judgement")}
                   for r in sorted(group, key=lambda r: (r["judge"], r["order"]))],
            target=targets.get(first["instruction_id"]),
        ))
    return shown


def _downstream(store: HubStore, later: Sequence[Node], seen: set[str], notes: list[str]
                ) -> tuple[list[list[Any]], list[ShownFigure]]:
    rows, figures = [], []
    for node in later:
        block = node.lineage
        if node.name == EVALS and block.get("scores"):
            what = ", ".join(f"{name} pass@1 {score.get('pass@1', float('nan')):.3f}"
                             for name, score in block["scores"].items())
            plotted = pass_at_1_figure(block["scores"])
            if hashlib.sha256(plotted.figure.png).hexdigest() not in seen:
                figures.append(_shown(plotted, f"{node.name} {node.ref.version}"))
        elif node.name == MODEL:
            what = "SFT checkpoint"
        else:
            what = ""
        rows.append([node.ref.repo_id, node.ref.version, node.ref.revision, what])
        figures += _card_figures(store, [node], seen, notes)
    return rows, figures


def build_report(store: HubStore, spec: str, battles: int = 3) -> str:
    """The HTML page of the lineage of `spec` (`sft_final@v3`, or a repo id with a version).
    Raises `ReportError`, `SpecError`, `VersionNotFoundError`, `HubError`."""
    if battles < 0:
        raise ReportError(f"--battles must be 0 or more, got {battles}")
    chain = ancestors(store, spec)
    last = chain[-1]
    later = built_from(store, last)
    blocks = [{**n.lineage, "dataset": n.name} for n in chain]
    notes: list[str] = []
    if chain[0].lineage.get("parent") is None and chain[0].name != "mined_raw":
        notes.append(f"the lineage starts at {chain[0].ref.spec()}, not at mined_raw")
    funnel = funnel_figure(funnel_stages(blocks))
    cost = cost_figure(cost_by_phase(blocks))
    seen = {hashlib.sha256(f.figure.png).hexdigest() for f in (funnel, cost)}
    page = ReportPage(
        title=f"WarriorCoder report: {last.ref.spec()}",
        intro=(f"The lineage of {last.ref.spec()}, read from the cards of {len(chain)} dataset "
               f"versions ({', '.join(n.name for n in chain)}) in the {store.where()}; written "
               f"by warriorcoder {package_version()}. Every figure is inline; the page loads "
               "nothing from the network."),
        lineage_rows=[[n.ref.repo_id, n.ref.version, n.ref.revision,
                       (n.lineage.get("cost") or {}).get("actual", {}).get("rows_out", "-"),
                       n.lineage.get("phase"), n.lineage.get("created_at")] for n in chain],
        experts=[[e.get("name"), e.get("model_id"), e.get("model_revision")]
                 for e in last.lineage.get("experts") or []],
        funnel=_shown(funnel, "the cards' row counts"),
        cost=ShownFigure(cost.figure.title, "the cards' recorded cost", cost.figure.png),
        cost_rows=_cost_rows(blocks),
        notes=notes,
    )
    page.figures = _card_figures(store, chain, seen, notes)
    page.downstream, page.downstream_figures = _downstream(store, later, seen, notes)
    names = [n.name for n in chain]
    if battles and VOTES in names:
        votes = store.load(VOTES, chain[names.index(VOTES)].ref.version).to_dict()
        targets: dict[str, dict[str, Any]] = {}
        if SFT_FINAL in names:
            sft = store.load(SFT_FINAL, chain[names.index(SFT_FINAL)].ref.version)
            targets = {row["id"]: row for row in sft.select_columns(
                [c for c in ("id", "winner", "winner_role", "final_score", "response")
                 if c in sft.column_names]).to_list()}
        page.battles = _battles(votes, targets, battles)
    return render(page)
