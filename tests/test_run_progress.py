"""The one progress line of `warriorcoder run`: phase k of n, calls done of planned, ETA from
the seconds per call each phase's last build measured."""

from __future__ import annotations

from warriorcoder.generation.run_progress import RunProgress, advance_run


def test_the_line_counts_calls_and_estimates_from_measured_seconds() -> None:
    with RunProgress([("mine", 10, 1.0), ("compress", 0, None), ("battle", 4, 2.0)],
                     enabled=False) as run:
        assert run.start(0) == ("run: phase 1 of 3 (mine), ETA ~18 s: 0 of 14 planned calls "
                                "done")
        advance_run(4)  # what every ExpertPool result does while the run is on
        assert run.eta_seconds() == 6 * 1.0 + 4 * 2.0
        advance_run(9)  # retries beyond the plan do not count past it
        assert run.start(2).startswith("run: phase 3 of 3 (battle), ETA ~8 s: 10 of 14")
        advance_run(1)
        assert run.done == 11 and run.eta_seconds() == 3 * 2.0
    advance_run(5)  # no run: nothing to count
    assert run.done == 11


def test_an_unmeasured_phase_takes_this_runs_pace_or_says_unknown() -> None:
    with RunProgress([("mine", 10, None), ("battle", 10, None)], enabled=False) as run:
        assert "ETA unknown" in run.start(0)
        advance_run(5)
        eta = run.eta_seconds()
        assert eta is not None and eta > 0  # 15 calls left at the pace of the first 5
