"""HumanEval pass@1 (`warriorcoder evaluate`) against the TGI test server and a tiny local model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from warriorcoder.config import ArenaConfig, ExpertConfig, GenerationConfig
from warriorcoder.evaluation import (
    INSTRUCTION_PREFIX,
    STATUSES,
    EvalReport,
    build_solution,
    evaluate,
    extract_code,
    instruction_prompt,
    load_problems,
    run_program,
)
from warriorcoder.testing.tgi_server import FakeModel, TGITestServer

PROBLEMS = {instruction_prompt(p.prompt): p for p in load_problems()}
"""What the model is asked, per problem: lets a responder know which problem it answers."""

Reply = Callable[[Any], str]
Served = tuple[ArenaConfig, str, TGITestServer, list[dict[str, Any]]]


def _responder(reply: Reply, seen: list[dict[str, Any]]) -> Callable[..., str]:
    def respond(kind: str, payload: dict[str, Any], model_name: str) -> str:
        seen.append(payload)
        problem = PROBLEMS[payload["messages"][-1]["content"]]
        return reply(problem)

    return respond


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Reply], Served]]:
    """Start a TGI test server whose model answers each HumanEval problem with `reply(problem)`;
    gives (arena config, the model's URL, the server, the request bodies the model got)."""
    servers: list[TGITestServer] = []

    def start(reply: Reply) -> Served:
        seen: list[dict[str, Any]] = []
        server = TGITestServer(
            {
                "coder": FakeModel("org/coder", responder=_responder(reply, seen)),
                "other": FakeModel("org/other"),
            }
        ).start()
        servers.append(server)
        config = ArenaConfig(
            experts=[
                ExpertConfig(name="coder", model_id="org/coder", urls=[server.url("coder")]),
                ExpertConfig(name="other", model_id="org/other", urls=[server.url("other")]),
            ],
            generation=GenerationConfig(
                journal=tmp_path / "journal.sqlite",
                max_retries=1,
                backoff_base_s=0.005,
                backoff_max_s=0.01,
                timeout_s=5.0,
            ),
        )
        return config, server.url("coder"), server, seen

    yield start
    for server in servers:
        server.stop()


def _canonical_body(problem: Any) -> str:
    return f"Here is the completion:\n```python\n{problem.canonical_solution}```\n"


def _canonical_script(problem: Any) -> str:
    script = problem.prompt + problem.canonical_solution
    return f"Sure.\n```python\n{script}\n\nprint({problem.entry_point}.__name__)\n```\nDone."


@pytest.mark.parametrize("reply", [_canonical_body, _canonical_script], ids=["body", "script"])
def test_canonical_solutions_pass(served, reply: Reply, tmp_path: Path) -> None:
    config, url, server, payloads = served(reply)
    report = evaluate(config, url, limit=10, out_dir=tmp_path / "out")

    assert report.pass_at_1 == 1.0
    assert report.counts["passed"] == 10 and report.total == 10
    assert report.model_id == "org/coder"
    assert [p.task_id for p in report.problems] == [f"HumanEval/{i}" for i in range(10)]
    # EvalPlus's instruction prompt, one chat turn, greedy with a fixed seed
    payload = payloads[0]
    assert payload["messages"] == [
        {"role": "user", "content": instruction_prompt(load_problems(1)[0].prompt)}
    ]
    assert payload["messages"][0]["content"].startswith(INSTRUCTION_PREFIX + "\n```\n")
    assert payload["temperature"] == 0 and payload["seed"] == 0
    assert payload["max_tokens"] == 512

    rows = [json.loads(line) for line in report.results_path.read_text().splitlines()]
    assert [row["task_id"] for row in rows] == [p.task_id for p in report.problems]
    assert all(row["status"] == "passed" and row["passed"] for row in rows)
    markdown = report.report_path.read_text()
    assert "**1.0000** (10/10)" in markdown


def test_wrong_answers_fail_with_the_error(served, tmp_path: Path) -> None:
    config, url, _, _ = served(lambda p: "```python\n    return 'surely not this'\n```")
    report = evaluate(config, url, limit=4, out_dir=tmp_path / "out")

    assert report.pass_at_1 == 0.0
    assert report.counts["failed"] == 4
    for problem, source in zip(report.problems, load_problems(4), strict=True):
        assert problem.status == "failed"
        assert problem.solution == source.prompt + "    return 'surely not this'\n"
        assert "Error" in problem.error
    assert "| HumanEval/0 | failed |" in report.report_path.read_text()


def test_infinite_loop_times_out(served, tmp_path: Path) -> None:
    config, url, _, _ = served(lambda p: "```python\n    while True:\n        pass\n```")
    started = time.perf_counter()
    report = evaluate(config, url, limit=2, timeout_s=1.0, workers=2, out_dir=tmp_path / "out")

    assert time.perf_counter() - started < 8
    assert [p.status for p in report.problems] == ["timed_out", "timed_out"]
    assert report.pass_at_1 == 0.0
    assert all(1.0 <= p.duration_s < 4 for p in report.problems)


def test_reply_without_code_is_counted_not_guessed(served, tmp_path: Path) -> None:
    replies = {
        0: "I am sorry, I cannot solve this problem.",
        1: "```python\n```",
        2: "Yes",
    }
    config, url, _, _ = served(lambda p: replies.get(int(p.task_id.split("/")[1]), "no"))
    report = evaluate(config, url, limit=3, out_dir=tmp_path / "out")

    assert report.counts["no_code"] == 3
    assert all(p.solution is None and p.duration_s is None for p in report.problems)
    assert report.pass_at_1 == 0.0


def test_rerun_is_served_from_the_journal(served, tmp_path: Path) -> None:
    config, url, server, _ = served(_canonical_body)
    first = evaluate(config, url, limit=5)
    assert server.stats.total_served == 5
    second = evaluate(config, url, limit=7)
    assert server.stats.total_served == 7, "only the two new problems are sent"
    assert [p.completion for p in second.problems[:5]] == [p.completion for p in first.problems]
    # default folder: next to the journal, named after the target
    assert first.out_dir == tmp_path / "eval" / second.out_dir.name
    assert first.out_dir.name.startswith("127.0.0.1-")
    assert len(second.results_path.read_text().splitlines()) == 7


def test_expert_name_target_and_failed_generations(served, tmp_path: Path) -> None:
    config, _, server, _ = served(_canonical_body)
    report = evaluate(config, "coder", limit=2, out_dir=tmp_path / "out")
    assert report.pass_at_1 == 1.0 and report.target == "expert coder"

    server.set_down("other")
    down = evaluate(config, "other", limit=2, out_dir=tmp_path / "down")
    assert [p.status for p in down.problems] == ["generation_failed"] * 2
    assert down.problems[0].error and "down" in down.problems[0].error

    with pytest.raises(ValueError, match=r"not an http\(s\) TGI URL.*coder, other"):
        evaluate(config, str(tmp_path / "missing"), limit=1)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        evaluate(config, "coder", limit=0)


def test_problem_order_and_limit_are_deterministic() -> None:
    every = load_problems()
    assert len(every) == 164
    assert [p.task_id for p in every] == [f"HumanEval/{i}" for i in range(164)]
    assert load_problems(12) == every[:12]


def test_extraction_prefers_the_first_python_block() -> None:
    problem = load_problems(1)[0]
    reply = (
        "Plan:\n```text\nnot code\n```\n```python\ndef has_close_elements(a, b):\n    return 1\n```"
        "\n```python\nprint('second')\n```"
    )
    assert extract_code(reply) == ("def has_close_elements(a, b):\n    return 1\n", True)
    assert extract_code("```\nx = 1\n```") == ("x = 1\n", True)
    assert extract_code("```python\nx = 1\n") == ("x = 1\n", True), "cut off by max_new_tokens"
    # an unfenced indented body completes the prompt; unfenced prose is no code
    assert build_solution(problem, "    return False\n") == problem.prompt + "    return False\n"
    assert build_solution(problem, "The answer is False.") is None


def test_runner_keeps_main_blocks_and_secrets_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    program = (
        "import os\nassert 'HF_TOKEN' not in os.environ\nif __name__ == '__main__':\n    input()\n"
    )
    assert run_program(program, timeout_s=5).status == "passed"
    outcome = run_program("raise ValueError('boom')", timeout_s=5)
    assert outcome.status == "failed" and "ValueError: boom" in outcome.error


def _tiny_checkpoint(folder: Path, chat_template: bool) -> Path:
    from warriorcoder.training.formatting import PromptFormat
    from warriorcoder.training.tiny import build_tiny_llama

    build_tiny_llama(folder, hidden_size=32, num_layers=1, max_positions=2048)
    if chat_template:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        fmt = PromptFormat("{system}\n\n@@ Instruction\n{instruction}\n\n@@ Response\n", "Sys")
        tokenizer.chat_template = fmt.chat_template()
        tokenizer.save_pretrained(folder)
    return folder


def test_local_checkpoint_folder(served, tmp_path: Path) -> None:
    config, _, _, _ = served(_canonical_body)
    folder = _tiny_checkpoint(tmp_path / "run" / "final", chat_template=True)
    report: EvalReport = evaluate(config, str(folder), limit=2, max_new_tokens=4)

    assert report.model_id == "run/final"
    assert report.model_revision.startswith("sha256:")
    assert report.out_dir == tmp_path / "eval" / "run-final"
    assert all(p.status in STATUSES and p.status != "generation_failed" for p in report.problems)
    assert all(p.generated_tokens <= 5 for p in report.problems)

    bare = _tiny_checkpoint(tmp_path / "bare", chat_template=False)
    with pytest.raises(ValueError, match="no chat template"):
        evaluate(config, str(bare), limit=1)
