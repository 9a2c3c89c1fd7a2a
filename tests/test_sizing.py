"""The paper's scale from the default config: 70,000 battles, mining sized for them, 3.3 epochs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from warriorcoder.cli import main
from warriorcoder.config import ArenaConfig, load_config
from warriorcoder.planning import (
    epochs_warning,
    planned_battles,
    planned_epochs,
    planned_filtered_rows,
    planned_mining_calls,
    planned_mining_samples,
    planned_sft_rows,
    shortfall_note,
)

EXPERTS = [{"name": f"e{i}", "model_id": f"m{i}", "urls": [f"http://e{i}"]} for i in range(5)]


def test_init_writes_a_config_at_the_papers_scale(tmp_path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "arena.yaml")])
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "arena.yaml")
    assert config.mine.samples_per_config == "auto"
    assert planned_battles(config) == 70_000
    assert planned_sft_rows(config) == 70_000
    # 512 x 448 = 229,376 samples over 70,000 rows
    assert planned_epochs(config) == pytest.approx(229_376 / 70_000) == pytest.approx(3.2768)
    # 70,000 x 1.2 = 84,000 filtered wanted; survival 0.9 x 0.5 x 0.99 x 0.6 = 0.2673 of
    # 5 experts x 9 sampling configs: 84,000 / 0.2673 / 45 = 6,983.5 -> 6,984 per config
    assert planned_mining_samples(config) == 6_984
    assert planned_mining_calls(config) == 6_984 * 45 == 314_280
    assert planned_filtered_rows(config) >= 84_000
    assert epochs_warning(config.train, planned_sft_rows(config)) is None


def test_auto_sizing_follows_the_knob_and_an_explicit_number_wins() -> None:
    config = ArenaConfig.model_validate({"experts": EXPERTS, "compress": {"size": 1000}})
    samples = planned_mining_samples(config)
    assert planned_filtered_rows(config) >= 1000 * 1.2 > planned_filtered_rows(
        config, (samples - 1) * 45)
    halved = ArenaConfig.model_validate({"experts": EXPERTS, "compress": {"size": 1000},
                                         "mine": {"survival": {"difficulty": 0.3}}})
    assert planned_mining_samples(halved) == pytest.approx(2 * samples, abs=1)
    fixed = ArenaConfig.model_validate({"experts": EXPERTS, "mine": {"samples_per_config": 7}})
    assert planned_mining_samples(fixed) == 7
    battles = ArenaConfig.model_validate({"experts": EXPERTS,
                                          "battle": {"battles_per_instruction": 2}})
    assert planned_battles(battles) == 140_000


def test_epochs_far_from_the_papers_are_warned_naming_the_knobs() -> None:
    config = ArenaConfig.model_validate({"experts": EXPERTS})
    # the old defaults: 4,500 rows -> 229,376 / 4,500 = 51 epochs
    warning = epochs_warning(config.train, 4_500)
    assert warning and "50.97 times" in warning
    assert "train.max_steps" in warning and "train.global_batch_size" in warning
    assert "near 29" in warning  # 3.28 x 4,500 / 512 = 28.8 steps
    assert "fewer" in epochs_warning(config.train, 300_000)
    assert epochs_warning(config.train, 60_000) is None


def test_shortfall_note_says_by_how_much_and_which_knob() -> None:
    assert shortfall_note(70_000, 70_000, "filter", "mine.samples_per_config") is None
    note = shortfall_note(52_500, 70_000, "filter", "mine.samples_per_config")
    assert note == ("filter kept 52,500 rows, 17,500 (25.0%) fewer than the 70,000 needed "
                    "downstream; raise mine.samples_per_config")
