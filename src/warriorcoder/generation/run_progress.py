"""One progress line for a whole `warriorcoder run`: phase k of n, calls done of planned, ETA.

    with RunProgress([("mine", 540, 0.8), ("filter", 300, None), ...]) as run:
        for index, phase in enumerate(phases):
            click.echo(run.start(index))     # "run: phase 2 of 6 (filter): 540 of 840 ..."
            ...                              # every ExpertPool result advances the line

The ETA is the planned calls still to make, each at the seconds per call the last build of its
phase measured (its card's cost), else at this run's own pace so far. On a terminal a tqdm
line sits above the per-phase bars; elsewhere only the line `start` returns is printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from tqdm.auto import tqdm

_ACTIVE: list[RunProgress] = []


def advance_run(count: int) -> None:
    """Count `count` results (sent or answered from the journal) toward the running run."""
    if _ACTIVE:
        _ACTIVE[-1].advance(count)


class RunProgress:
    """The run-wide counter; `phases` is (name, planned calls, measured seconds per call)."""

    def __init__(self, phases: Sequence[tuple[str, int, float | None]],
                 enabled: bool | None = None) -> None:
        self.phases = list(phases)
        self.index = 0
        self.done_in_phase = [0] * len(self.phases)
        self._started = time.monotonic()
        self.planned = sum(calls for _, calls, _ in self.phases)
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(total=self.planned, desc="run", unit="call", disable=not enabled,
                        position=0, dynamic_ncols=True, mininterval=0.5,
                        bar_format="{desc}: {n_fmt}/{total_fmt} calls |{bar}| {postfix}")

    def __enter__(self) -> RunProgress:
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)
        self.bar.close()

    @property
    def done(self) -> int:
        """Calls done, each phase counted up to its plan."""
        return sum(min(done, calls) for done, (_, calls, _) in
                   zip(self.done_in_phase, self.phases, strict=True))

    def advance(self, count: int) -> None:
        before = self.done
        self.done_in_phase[self.index] += count
        self.bar.update(self.done - before)
        self.bar.set_postfix_str(self._where(), refresh=False)

    def eta_seconds(self) -> float | None:
        """Seconds left by the plan (None: no measured pace and no call done yet)."""
        elapsed = time.monotonic() - self._started
        pace = elapsed / self.done if self.done else None
        left = 0.0
        for position, (_, calls, per_call) in enumerate(self.phases):
            if position < self.index:
                continue
            remaining = max(calls - self.done_in_phase[position], 0)
            seconds = per_call if per_call is not None else pace
            if remaining and seconds is None:
                return None
            left += remaining * (seconds or 0.0)
        return left

    def _where(self) -> str:
        name = self.phases[self.index][0]
        eta = self.eta_seconds()
        when = "ETA unknown" if eta is None else f"ETA ~{_duration(eta)}"
        return f"phase {self.index + 1} of {len(self.phases)} ({name}), {when}"

    def start(self, index: int) -> str:
        """Enter phase `index`; the one line to print for it."""
        self.index = index
        self.bar.set_postfix_str(self._where())
        return f"run: {self._where()}: {self.done:,} of {self.planned:,} planned calls done"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
