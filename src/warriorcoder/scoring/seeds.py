"""Seeds and ids derived from names: the same parts give the same number on every machine.

Every random choice of the arena (mining seeds, vote orders, Elo orders, bootstrap resamples,
defender schedules) draws from `derive_seed(label, config seed, ...)`, so a run is a function
of its config; rows are named by `stable_id` of what identifies them.
"""

from __future__ import annotations

import hashlib
import json


def _digest(parts: tuple[object, ...]) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any JSON-able parts (same parts, same seed, on every machine)."""
    return int.from_bytes(_digest(parts)[:4], "big") & 0x7FFF_FFFF


def stable_id(*parts: object, length: int = 16) -> str:
    """A stable hex id from any JSON-able parts."""
    return _digest(parts).hex()[:length]
