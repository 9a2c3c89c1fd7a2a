"""The report as one self-contained HTML page: inline CSS, images as base64 data URIs, no
script and no network. Every text that comes from a dataset or a card (model output above
all) is escaped with `html.escape`; nothing is inserted unescaped but the page's own markup.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 72em;
       color: #1d1d1f; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .6em; white-space: pre-wrap;
      word-break: break-word; max-height: 24em; overflow: auto; font-size: .85em; }
.battle { border: 1px solid #ccc; border-radius: 6px; padding: .4em 1em 1em; margin: 1em 0; }
.answers { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.target { background: #eef8ee; } .muted { color: #666; font-size: .9em; }
"""


@dataclass(frozen=True)
class ShownFigure:
    """A PNG on the page, with its caption and (optionally) the table of its numbers."""

    title: str
    source: str
    """Where it comes from, e.g. `votes v1 card`."""
    png: bytes
    header: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = ()


@dataclass(frozen=True)
class ShownBattle:
    """One battle shown whole."""

    battle_id: str
    instruction: str
    attacker: str
    defender: str
    answers: Mapping[str, str]
    """attacker / defender -> answer text."""
    truncated: Mapping[str, bool]
    votes: Sequence[Mapping[str, Any]]
    """judge, shown_first, verdict, winner, attempts, judgement."""
    target: Mapping[str, Any] | None = None
    """winner, winner_role, final_score, response (None: not in sft_final)."""


@dataclass
class ReportPage:
    """Everything the page shows, as plain data."""

    title: str
    intro: str
    lineage_rows: list[list[Any]] = field(default_factory=list)
    experts: list[list[Any]] = field(default_factory=list)
    funnel: ShownFigure | None = None
    cost: ShownFigure | None = None
    cost_rows: list[list[Any]] = field(default_factory=list)
    figures: list[ShownFigure] = field(default_factory=list)
    downstream: list[list[Any]] = field(default_factory=list)
    downstream_figures: list[ShownFigure] = field(default_factory=list)
    battles: list[ShownBattle] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{_e(value if value is not None else '-')}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    return f"<td>{_e(value)}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; every cell escaped."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(shown: ShownFigure) -> str:
    """The image inline (a data URI), its caption, and its table when it has one."""
    data = base64.b64encode(shown.png).decode("ascii")
    numbers = table(shown.header, shown.rows) if shown.header else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(shown.title)}">'
            f"<figcaption>{_e(shown.title)} <span class=\"muted\">({_e(shown.source)})</span>"
            f"</figcaption>{numbers}</figure>")


def _pre(text: str) -> str:
    return f"<pre>{_e(text)}</pre>"


def battle(shown: ShownBattle) -> str:
    """Instruction, both answers, every vote, and the target chosen for the instruction."""
    sides = []
    for role, name in (("attacker", shown.attacker), ("defender", shown.defender)):
        cut = " (cut by the length limit)" if shown.truncated.get(role) else ""
        sides.append(f"<div><h4>{_e(role)}: {_e(name)}{_e(cut)}</h4>"
                     f"{_pre(shown.answers.get(role, ''))}</div>")
    votes = table(["judge", "shown first", "verdict", "winner", "attempts"],
                  [[v.get("judge"), v.get("shown_first"), v.get("verdict") or "invalid",
                    v.get("winner"), v.get("attempts")] for v in shown.votes])
    judgements = "".join(
        f"<details><summary>{_e(v.get('judge'))}'s judgement</summary>"
        f"{_pre(v.get('judgement') or '')}</details>" for v in shown.votes)
    if shown.target is None:
        target = '<p class="muted">This instruction has no row in sft_final.</p>'
    else:
        t = shown.target
        target = (f'<div class="target"><h4>Target: {_e(t.get("winner"))} '
                  f'({_e(t.get("winner_role"))}, final score {_e(_score(t.get("final_score")))})'
                  f"</h4>{_pre(t.get('response') or '')}</div>")
    return (f'<section class="battle"><h3>Battle {_e(shown.battle_id)}</h3>'
            f"<h4>Instruction</h4>{_pre(shown.instruction)}"
            f'<div class="answers">{"".join(sides)}</div>'
            f"<h4>Votes</h4>{votes}{judgements}{target}</section>")


def _score(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)


def render(page: ReportPage) -> str:
    """The whole page."""
    parts = [f"<h1>{_e(page.title)}</h1>", f"<p>{_e(page.intro)}</p>"]
    parts += ["<h2>Lineage</h2>",
              table(["dataset", "version", "revision", "rows", "phase", "created"],
                    page.lineage_rows)]
    if page.experts:
        parts += ["<h3>Experts</h3>", table(["name", "model id", "revision"], page.experts)]
    if page.funnel is not None:
        parts += ["<h2>Funnel: mined_raw to the last version</h2>", figure(page.funnel)]
    if page.cost is not None:
        parts += ["<h2>Cost: planned against actual</h2>", figure(page.cost),
                  table(["phase", "calls planned", "calls actual", "prompt tokens planned",
                         "prompt tokens actual", "generated tokens planned",
                         "generated tokens actual", "from the journal", "failed", "seconds"],
                        page.cost_rows)]
    if page.figures:
        parts += ["<h2>Figures from the cards</h2>", *(figure(f) for f in page.figures)]
    parts.append("<h2>Model and evaluations built from it</h2>")
    if page.downstream:
        parts.append(table(["artifact", "version", "revision", "what"], page.downstream))
        parts += [figure(f) for f in page.downstream_figures]
    else:
        parts.append('<p class="muted">No model or evals version names this dataset version '
                     "as its source yet.</p>")
    if page.battles:
        parts += [f"<h2>Battles ({len(page.battles)} shown whole)</h2>",
                  *(battle(b) for b in page.battles)]
    if page.notes:
        parts += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in page.notes)
                  + "</ul>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(page.title)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")
