"""The command line: the commands a user expects, init, status, --input and --from-card."""

from pathlib import Path

import datasets
import pytest
from click.testing import CliRunner

from warriorcoder import cli
from warriorcoder.builders import base
from warriorcoder.builders.base import PhaseInput, PhaseOutput
from warriorcoder.config import load_config
from warriorcoder.dataset_cards import CardContent, card_lineage
from warriorcoder.hub import HubStore

ARENA = """\
hub: {root: hub, namespace: team, prefix: wc}
experts:
  - {name: a, model_id: org/a, urls: ["http://127.0.0.1:9"]}
  - {name: b, model_id: org/b, urls: ["http://127.0.0.1:9"]}
mine: {samples_per_config: 3}
"""


def fake_mine(phase_input: PhaseInput) -> PhaseOutput:
    """Rows that depend on the config, so a rebuild from a card can be compared."""
    n = phase_input.config.mine.samples_per_config
    rows = datasets.Dataset.from_dict({"id": [str(i) for i in range(n)],
                                       "instruction": [f"task {i}" for i in range(n)]})
    return PhaseOutput(rows, CardContent(counts=[("mined", n)]))


def fake_filter(phase_input: PhaseInput) -> PhaseOutput:
    rows = phase_input.parent_rows.filter(lambda row: row["id"] != "0")
    return PhaseOutput(rows, CardContent(counts=[("input", len(phase_input.parent_rows)),
                                                 ("kept", len(rows))]))


@pytest.fixture
def arena(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "arena.yaml"
    path.write_text(ARENA)
    fakes = {"mine": fake_mine, "filter": fake_filter}
    monkeypatch.setattr(base, "builder_for", lambda phase: fakes[phase])
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def test_help_lists_every_command():
    result = invoke("--help")
    for command in ("init", "mine", "filter", "compress", "battle", "judge", "select", "run",
                    "status", "train", "evaluate"):
        assert f"  {command} " in result.output


def test_init_writes_a_valid_config_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "arena.yaml"
    assert invoke("init", str(path)).exit_code == 0
    config = load_config(path)
    assert len(config.experts) == 5 and config.select.alpha == 0.7
    again = CliRunner().invoke(cli.main, ["init", str(path)])
    assert again.exit_code != 0 and "--force" in again.output


def test_evaluate_rejects_an_unknown_target(tmp_path):
    path = tmp_path / "arena.yaml"
    path.write_text(ARENA)
    result = CliRunner().invoke(cli.main, ["evaluate", "-c", str(path), "no-such-expert"])
    assert result.exit_code != 0 and "no-such-expert" in result.output


def test_bad_config_is_reported_with_field(tmp_path):
    path = tmp_path / "arena.yaml"
    path.write_text(ARENA + "select: {alpha: 2}\n")
    result = CliRunner().invoke(cli.main, ["status", "-c", str(path)])
    assert result.exit_code != 0 and "select.alpha" in result.output and "line 6" in result.output


def test_phase_reads_pinned_parent_and_status_shows_lineage(arena):
    assert invoke("mine", "-c", str(arena)).exit_code == 0
    arena.write_text(ARENA.replace("samples_per_config: 3", "samples_per_config: 5"))
    assert invoke("mine", "-c", str(arena)).exit_code == 0
    result = invoke("filter", "-c", str(arena), "--input", "v1")
    assert result.exit_code == 0 and "team/wc-filtered@v1" in result.output

    store = HubStore.from_config(load_config(arena).hub)
    assert len(store.load("filter", "v1")) == 2  # read mined_raw v1 (3 rows), not v2 (5 rows)
    assert card_lineage(store.read_card("filter", "v1"))["parent"]["version"] == "v1"

    status = invoke("status", "-c", str(arena)).output
    assert "team/wc-mined_raw: 2 versions" in status
    assert "parent=team/wc-mined_raw@v1" in status


def test_missing_parent_says_what_to_run(arena):
    result = CliRunner().invoke(cli.main, ["filter", "-c", str(arena)])
    assert result.exit_code != 0 and "run `warriorcoder mine` first" in result.output
    result = CliRunner().invoke(cli.main, ["filter", "-c", str(arena), "--input", "v7"])
    assert result.exit_code != 0 and "v7" in result.output


def test_from_card_rebuilds_with_the_recorded_config(arena):
    invoke("mine", "-c", str(arena))  # v1 with 3 samples
    arena.write_text(ARENA.replace("samples_per_config: 3", "samples_per_config: 5"))
    result = invoke("mine", "-c", str(arena), "--from-card", "team/wc-mined_raw@v1")
    assert result.exit_code == 0, result.output
    store = HubStore.from_config(load_config(arena).hub)
    assert store.load("mine", "v2")["instruction"] == store.load("mine", "v1")["instruction"]
