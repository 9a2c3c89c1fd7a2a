"""Lineage of every versioned artifact: its fingerprint, the package version, and the card
block that records them.

Every card warriorcoder writes (the six phase datasets, `model`, `evals`) holds a
`warriorcoder:` block in its YAML metadata; `card_lineage` reads it back. The block's
`fingerprint` is `fingerprint(payload)` of everything that determines the artifact, so a
rerun with the same inputs finds the version it would publish (`HubStore.version_with`).

This module is pure: it imports nothing of the package but its errors.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version_of
from typing import Any

LINEAGE_KEY = "warriorcoder"
"""The card metadata key that holds the lineage block."""


def package_version() -> str:
    """The installed warriorcoder version (`0+unknown` in a bare source tree)."""
    try:
        return _version_of("warriorcoder")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def fingerprint(payload: Any) -> str:
    """sha256 of `payload` as canonical JSON (sorted keys, no spaces; anything JSON does not
    know is written with `str`). Equal inputs give equal fingerprints on every machine, so
    the payload must hold no local path."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def card_lineage(card_text: str) -> dict[str, Any]:
    """The `warriorcoder` block of a card's metadata (phase, parent, config, counts, ...);
    raises `ValueError` for a card warriorcoder did not write."""
    from huggingface_hub import RepoCard

    metadata = RepoCard(card_text, ignore_metadata_errors=True).data.to_dict()
    lineage = metadata.get(LINEAGE_KEY)
    if not isinstance(lineage, dict):
        raise ValueError("this card has no `warriorcoder` metadata (not written by warriorcoder)")
    return lineage


def lineage_or_none(card_text: str | None) -> dict[str, Any] | None:
    """`card_lineage`, or None for no card or a card without the block."""
    if card_text is None:
        return None
    try:
        return card_lineage(card_text)
    except ValueError:
        return None
