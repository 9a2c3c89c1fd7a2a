"""The command line: the commands a user expects, init, status, --input and --from-card."""

from pathlib import Path

import datasets
import pytest
from click.testing import CliRunner

from warriorcoder import cli
from warriorcoder.builders import REGISTRY
from warriorcoder.builders.base import PhaseInput, PhaseOutput
from warriorcoder.config import load_config
from warriorcoder.dataset_cards import CardContent, card_lineage
from warriorcoder.hub import open_store

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
                                       "expert": ["a"] * n,
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
    for phase, fake in {"mine": fake_mine, "filter": fake_filter}.items():
        monkeypatch.setattr(REGISTRY[phase], "build", fake)
        monkeypatch.setattr(REGISTRY[phase], "uses_experts", False)  # no server to ask
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

    store = open_store(load_config(arena).hub)
    assert len(store.load("filtered", "v1")) == 2  # read mined_raw v1 (3 rows), not v2 (5 rows)
    assert card_lineage(store.read_card("filtered", "v1"))["parent"]["version"] == "v1"

    status = invoke("status", "-c", str(arena)).output
    assert "team/wc-mined_raw: 2 versions" in status
    tree = status.split("Lineage")[1].splitlines()
    first = next(i for i, line in enumerate(tree) if "team/wc-mined_raw@v1  3 rows" in line)
    assert "└── team/wc-filtered@v1  2 rows" in tree[first + 1], status  # built from mined v1
    assert "team/wc-mined_raw@v2  5 rows" in status


def test_a_parent_without_the_required_columns_is_named(arena):
    invoke("mine", "-c", str(arena))
    store = open_store(load_config(arena).hub)
    rows = datasets.Dataset.from_dict({"id": ["x"], "instruction": ["task"]})
    store.publish("mined_raw", rows, lambda ref: "---\n---\nhand-made\n")
    result = CliRunner().invoke(cli.main, ["filter", "-c", str(arena)])
    assert result.exit_code == 1
    assert "Error: filter: team/wc-mined_raw@v2 lacks column(s) expert" in result.output


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
    store = open_store(load_config(arena).hub)
    assert store.load("mined_raw", "v2")["instruction"] == store.load("mined_raw", "v1")[
        "instruction"]
    assert "team/wc-mined_raw@v2" in result.output


def test_from_card_rebuilds_into_the_hub_of_the_current_config(arena, tmp_path):
    invoke("mine", "-c", str(arena))
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "arena.yaml").write_text(ARENA)
    source = load_config(arena).hub.root / "team" / "wc-mined_raw"
    (other / "hub" / "team").mkdir(parents=True)
    import shutil

    shutil.copytree(source, other / "hub" / "team" / "wc-mined_raw")  # the card's repo, copied
    result = invoke("mine", "-c", str(other / "arena.yaml"), "--from-card",
                    "team/wc-mined_raw@v1")
    assert result.exit_code == 0, result.output
    assert str(other / "hub") in result.output
    assert [r.version for r in open_store(load_config(arena).hub).versions(
        "mined_raw")] == ["v1"]  # the first folder's hub is untouched


def test_a_rerun_reuses_the_identical_version_and_force_publishes(arena):
    first = invoke("mine", "-c", str(arena))
    again = invoke("mine", "-c", str(arena))
    assert "published team/wc-mined_raw@v1" in first.output
    assert "reused team/wc-mined_raw@v1" in again.output
    forced = invoke("mine", "-c", str(arena), "--force")
    assert "published team/wc-mined_raw@v2" in forced.output
    arena.write_text(ARENA.replace("samples_per_config: 3", "samples_per_config: 4"))
    changed = invoke("mine", "-c", str(arena))
    assert "published team/wc-mined_raw@v3" in changed.output  # another config, a new version


def test_dry_run_plans_without_any_server(tmp_path):
    path = tmp_path / "arena.yaml"
    path.write_text(ARENA)
    result = invoke("run", "-c", str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    mine_row = next(line for line in result.output.splitlines() if line.startswith("| mine "))
    calls = int(mine_row.split("|")[2])
    assert calls == 2 * 9 * 3  # experts x sampling configs x samples_per_config
    assert not (tmp_path / "hub").exists()


TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _down_arena(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "arena.yaml"
    path.write_text(ARENA.replace('urls: ["http://127.0.0.1:9"]}', 'urls: ["http://127.0.0.1:9"]'
                                  + extra + "}")
                    + "generation: {max_retries: 0, timeout_s: 2}\n")
    return path


@pytest.mark.parametrize("extra, expected", [
    (", token_env: WARRIORCODER_TEST_UNSET_TOKEN", "WARRIORCODER_TEST_UNSET_TOKEN"),
    (", chat_template: '" + TEMPLATE + "'", "127.0.0.1:9"),
    (", tokenizer: no-such-org/no-such-tokenizer", "no-such-org/no-such-tokenizer"),
])
def test_runtime_mistakes_print_one_error_line(tmp_path, monkeypatch, extra, expected):
    monkeypatch.delenv("WARRIORCODER_TEST_UNSET_TOKEN", raising=False)
    path = _down_arena(tmp_path, extra)
    result = CliRunner().invoke(cli.main, ["mine", "-c", str(path)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and expected in result.output, result.output
    assert "Traceback" not in result.output
    verbose = CliRunner().invoke(cli.main, ["-v", "mine", "-c", str(path)])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output
