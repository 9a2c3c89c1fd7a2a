"""A trimmed run of the embedded default (examples/embedded.yaml with tiny counts): the real
packaged experts, mine -> sft_final through the CLI, and the cards' code statistics checked
against the published rows.

The converted safetensors copies of the packaged models are shared with the embedded demo
(its journal folder's `models/`), so only the first run anywhere converts them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from warriorcoder.config import load_config
from warriorcoder.hub import open_store
from warriorcoder.scoring.answer_stats import code_blocks, python_parses

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "examples" / "embedded.yaml"

TRIM = {
    "mine": {"temperatures": [1.0], "top_ps": [0.99], "samples_per_config": 2,
             "max_new_tokens": 48},
    "filter": {"max_new_tokens": 16, "max_attempts": 1},
    "compress": {"size": 4},
    "battle": {"max_new_tokens": 64},
    "judge": {"max_new_tokens": 16, "max_attempts": 1},
    "select": {"elo_permutations": 5, "bootstrap_rounds": 5, "allow_truncated_targets": True},
}
"""Counts overridden in the embedded config: 6 mining calls, at most 4 battles. Answers to the
mined function tasks do not end within 64 tokens, so cut answers may be targets here."""


def _trimmed_config(tmp_path: Path) -> Path:
    config = load_config(EMBEDDED)
    data = config.to_yaml_dict()
    for section, values in TRIM.items():
        data[section].update(values)
    data["hub"]["root"] = str(tmp_path / "hub")
    journal = tmp_path / "run" / "journal.sqlite"
    data["generation"]["journal"] = str(journal)
    shared = config.generation.journal.parent / "models"
    shared.mkdir(parents=True, exist_ok=True)
    journal.parent.mkdir(parents=True)
    (journal.parent / "models").symlink_to(shared, target_is_directory=True)
    path = tmp_path / "arena.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _table(card: str, section: str) -> dict[str, list[str]]:
    """The rows of the tables under `## <section>` in a card: first cell -> the other cells."""
    body = card.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(line) <= set("|-") and cells[1] != "answers":
            rows[cells[0]] = cells[1:]
    return rows


def _cells(texts: list[str]) -> list[str]:
    """What the card must say of these answers, recomputed from the rows."""
    n = len(texts)

    def share(count: int) -> str:
        return f"{count}/{n} ({100 * count / n:.0f}%)"

    fenced = sum(bool(code_blocks(t)) for t in texts)
    python = sum(any(b.language in {"", "python", "py", "python3"} for b in code_blocks(t))
                 for t in texts)
    parsing = sum(python_parses(t) for t in texts)
    return [str(n), share(fenced), share(python), share(parsing),
            f"{sum(map(len, texts)) / n:.0f}"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_trimmed_embedded_arena_cards_match_their_rows(tmp_path: Path) -> None:
    path = _trimmed_config(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "DS_ACCELERATOR": "cpu"}
    done = subprocess.run([sys.executable, "-m", "warriorcoder.cli", "run", "-c", str(path)],
                          env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    config = load_config(path)
    store = open_store(config.hub)
    for name in ("mined_raw", "filtered", "compressed", "battles", "votes", "sft_final"):
        assert store.latest(name) is not None, name
    experts = {e.name for e in config.experts}

    version = store.latest("battles").version
    battles = store.load("battles", version).to_list()
    answers: dict[str, dict[str, str]] = {}
    for row in battles:
        for side in ("attacker", "defender"):
            answers.setdefault(row[side], {})[row["instruction_id"]] = row[f"response_{side}"]
    assert set(answers) <= experts and len(answers) >= 2
    table = _table(store.read_card("battles", version), "Code in the answers")
    assert set(table) == set(answers)
    for expert, given in answers.items():
        assert table[expert] == _cells(list(given.values())), expert

    version = store.latest("sft_final").version
    rows = store.load("sft_final", version).to_list()
    assert rows and all(r["winner"] in experts for r in rows)
    chosen = [r["response"] for r in rows]
    lost = [c["response"] for r in rows for c in r["candidates"] if c["expert"] != r["winner"]]
    # every target is one of its candidates' answers, the winner's
    for row in rows:
        by_expert = {c["expert"]: c["response"] for c in row["candidates"]}
        assert by_expert[row["winner"]] == row["response"]
        assert row["messages"][-1]["content"] == row["response"]
    table = _table(store.read_card("sft_final", version), "Code in the targets")
    assert table["chosen targets"] == _cells(chosen)
    assert table["losing candidates"] == _cells(lost)
    for expert in {c["expert"] for r in rows for c in r["candidates"]}:
        mine = [c["response"] for r in rows for c in r["candidates"] if c["expert"] == expert]
        assert table[f"{expert} (all its candidates)"] == _cells(mine)
    assert re.search(r"\| chosen targets \| \d+ \|", store.read_card("sft_final", version))
