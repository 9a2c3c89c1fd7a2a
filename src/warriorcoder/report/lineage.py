"""A lineage read back from the cards: a dataset version, its ancestors to mined_raw, and the
model and evals versions built from it.

Each card's `warriorcoder` block names its phase and its parent's repo and version; the phase
registry names the parent's dataset, so the walk needs nothing but the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warriorcoder.builders import PHASES, get_phase, phase_of_dataset
from warriorcoder.errors import HubError, WarriorcoderError
from warriorcoder.hub import EVALS, MODEL, HubStore, VersionRef, parse_spec
from warriorcoder.lineage import lineage_or_none

_IMAGE = re.compile(r"!\[(?P<title>[^\]]*)\]\((?P<path>[^)\s]+)\)")


class ReportError(WarriorcoderError, ValueError):
    """The report cannot be built for that dataset version (the message says why)."""


@dataclass(frozen=True)
class Node:
    """One version of the lineage: its ref, card text and `warriorcoder` block."""

    ref: VersionRef
    card: str
    lineage: dict[str, Any]

    @property
    def name(self) -> str:
        return self.ref.dataset


def dataset_name(store: HubStore, repo: str) -> str:
    """The short name (`sft_final`) of a short name or a repo id (`org/warriorcoder-sft_final`)."""
    for name in (*(get_phase(p).dataset for p in PHASES), MODEL, EVALS):
        if repo in (name, store.repo_id(name)):
            return name
    known = ", ".join(get_phase(p).dataset for p in PHASES)
    raise ReportError(f"--dataset {repo!r}: not a dataset of this arena; give one of {known} "
                      "(or its repo id) with a version, e.g. sft_final@v1")


def node(store: HubStore, name: str, version: str) -> Node:
    """The version's ref, card and block; raises `ReportError` for a card warriorcoder did not
    write (and `VersionNotFoundError` for a version that does not exist)."""
    ref = store.get(name, version)
    card = store.read_card(name, version)
    block = lineage_or_none(card)
    if block is None:
        raise ReportError(f"{ref.spec()}: its card holds no `warriorcoder` metadata block; the "
                          "report follows cards written by warriorcoder")
    return Node(ref, card, block)


def ancestors(store: HubStore, spec: str) -> list[Node]:
    """The version `spec` (`<dataset or repo id>@vN`) and every version it descends from,
    oldest (mined_raw) first."""
    repo, version = parse_spec(spec)
    chain = [node(store, dataset_name(store, repo), version)]
    while (parent := chain[-1].lineage.get("parent")) is not None:
        phase = phase_of_dataset(chain[-1].name)
        parent_name = (get_phase(phase.parent).dataset
                       if phase is not None and phase.parent else None)
        if parent_name is None:
            raise ReportError(f"{chain[-1].ref.spec()}: its card names a parent "
                              f"({parent.get('repo_id')}) its phase does not read")
        chain.append(node(store, parent_name, str(parent.get("version"))))
    return chain[::-1]


def _parent_spec(block: dict[str, Any]) -> str | None:
    parent = block.get("parent") or {}
    if parent.get("repo_id") and parent.get("version"):
        return f"{parent['repo_id']}@{parent['version']}"
    return None


def built_from(store: HubStore, source: Node) -> list[Node]:
    """Versions of `model` trained on `source`, then versions of `evals` of those models
    (each card's parent, or for an older model card the `<repo>@<version>` it names)."""
    wanted = {source.ref.spec()}
    found: list[Node] = []
    for name in (MODEL, EVALS):
        for ref in store.versions(name):
            try:
                card = store.read_card(name, ref.version)
            except (OSError, LookupError, HubError):
                continue
            block = lineage_or_none(card) or {}
            if _descends(block, card, wanted, models=[n.ref for n in found]):
                found.append(Node(ref, card, block))
                wanted.add(ref.spec())
    return found


def _descends(block: dict[str, Any], card: str, wanted: set[str],
              models: list[VersionRef]) -> bool:
    """Whether a model or evals card names one of `wanted` as its parent; without a parent, a
    model card that names `**<repo>@<version>**` of its dataset, or an evals card whose
    `model_id` is a found model's repo (at its revision, where both record one)."""
    parent = _parent_spec(block)
    if parent:
        return parent in wanted
    if any(f"**{spec}**" in card for spec in wanted):
        return True
    model_id, revision = block.get("model_id"), block.get("model_revision")
    return any(model_id == ref.repo_id and revision in (None, "", ref.revision, ref.version)
               for ref in models)


def card_images(text: str) -> list[tuple[str, str]]:
    """(title, relative path) of every image a card links from its own repo."""
    return [(m["title"], m["path"]) for m in _IMAGE.finditer(text)
            if "://" not in m["path"] and not m["path"].startswith("/")]


def read_file(store: HubStore, ref: VersionRef, path: str) -> bytes | None:
    """A file of a version (e.g. `figures/ratings.png`), or None when it is not there."""
    if ref.is_local:
        file = Path(ref.location) / path
        return file.read_bytes() if file.is_file() else None
    api = getattr(store, "api", None)
    if api is None:
        return None
    from huggingface_hub.errors import HfHubHTTPError

    try:
        local = api.hf_hub_download(ref.repo_id, path, repo_type=store.repo_type(ref.dataset),
                                    revision=ref.revision)
    except HfHubHTTPError:
        return None
    return Path(local).read_bytes()


def ancestor_blocks(store: HubStore, ref: VersionRef | None) -> list[dict[str, Any]]:
    """The `warriorcoder` blocks of `ref` and its ancestors, oldest first, each with `dataset`
    set to the short name; the walk stops (quietly) at a version whose card it cannot read or
    that holds no block (e.g. a hand-made parent)."""
    blocks: list[dict[str, Any]] = []
    name, version = (ref.dataset, ref.version) if ref is not None else (None, None)
    while name is not None and version is not None:
        try:
            found = node(store, name, version)
        except (ReportError, HubError, LookupError, OSError):
            break
        blocks.append({**found.lineage, "dataset": name})
        phase = phase_of_dataset(name)
        parent = found.lineage.get("parent") or {}
        name = get_phase(phase.parent).dataset if phase is not None and phase.parent else None
        version = parent.get("version")
    return blocks[::-1]


def lineage_card_sections(store: HubStore, parent: VersionRef | None,
                          block: dict[str, Any]) -> list[Any]:
    """The funnel and per-phase cost sections of a card whose own block (`dataset`,
    `counts`, `cost`) is `block` and whose parent is `parent`."""
    from warriorcoder.dataset_cards.arena_figures import lineage_sections

    return lineage_sections([*ancestor_blocks(store, parent), block])
