"""The lineage of a hub's versions as a tree, for `warriorcoder status`.

Each version is drawn under the version it was built from (its card's `parent`), with its row
count and date; a version whose parent is not in this hub (or that has none) starts a tree.

    team/wc-mined_raw@v1  120 rows  2025-06-01 10:02
    └── team/wc-filtered@v1  80 rows  2025-06-01 10:09
        ├── team/wc-compressed@v1  20 rows  2025-06-01 10:10
        └── team/wc-compressed@v2  40 rows  2025-06-02 08:00
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    """One version: `repo_id@version`, its parent's spec (None: a root), rows, creation date."""

    spec: str
    parent: str | None
    rows: int | None
    created: str | None
    note: str = ""


def _label(node: Node, missing_parent: bool) -> str:
    rows = "? rows" if node.rows is None else f"{node.rows:,} rows"
    created = (node.created or "?").replace("T", " ")[:16]
    text = f"{node.spec}  {rows}  {created}"
    if missing_parent:
        text += f"  (from {node.parent}, not in this hub)"
    return text + (f"  {node.note}" if node.note else "")


def render_tree(nodes: Sequence[Node]) -> list[str]:
    """The tree's lines: roots in the order given, children in the order given."""
    known = {node.spec for node in nodes}
    children: dict[str, list[Node]] = {}
    roots = []
    for node in nodes:
        if node.parent is not None and node.parent in known:
            children.setdefault(node.parent, []).append(node)
        else:
            roots.append(node)
    lines: list[str] = []

    def walk(node: Node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        missing = node.parent is not None and node.parent not in known
        lines.append(prefix + branch + _label(node, missing))
        below = children.get(node.spec, [])
        inner = prefix if top else prefix + ("    " if last else "│   ")
        for index, child in enumerate(below):
            walk(child, inner, index == len(below) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return lines
