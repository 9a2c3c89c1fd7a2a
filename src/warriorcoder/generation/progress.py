"""A progress bar per phase: done/total, in flight, tokens/s, failures, ETA (tqdm).

Quiet unless stderr is a terminal (or `enabled=True`)."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

from warriorcoder.generation.run_progress import advance_run


class Progress:
    """Counts results of one `ExpertPool.run`; cached results count as done from the start."""

    def __init__(self, total: int, desc: str, cached: int, enabled: bool | None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            initial=cached,
            desc=desc,
            unit="call",
            disable=not enabled,
            dynamic_ncols=True,
            mininterval=0.2,
        )
        self.enabled = enabled
        advance_run(cached)  # answered from the journal: done for the run's line too
        self.in_flight = 0
        self.failures = 0
        self.tokens = 0
        self._started = time.monotonic()
        self._shown = 0.0

    def sent(self) -> None:
        self.in_flight += 1

    def done(self, generated_tokens: int, failed: bool, count: int = 1) -> None:
        """One call came back; it answers `count` requests (duplicates are sent once)."""
        self.in_flight -= 1
        self.tokens += generated_tokens
        self.failures += count if failed else 0
        advance_run(count)
        if not self.enabled:
            return
        self.bar.update(count)
        now = time.monotonic()
        if now - self._shown > 0.5:
            self._shown = now
            self._postfix(now)

    def _postfix(self, now: float) -> None:
        rate = self.tokens / max(now - self._started, 1e-9)
        self.bar.set_postfix(
            in_flight=self.in_flight, tok_s=f"{rate:.0f}", failed=self.failures, refresh=False
        )

    def close(self) -> None:
        if self.enabled:
            self._postfix(time.monotonic())
        self.bar.close()
