"""`warriorcoder evaluate`: benchmarks, EvalPlus's prompts and numbers, samples, the evals
dataset and the model card, against the TGI test server and tiny local models."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.tgi_server import FakeModel, TGITestServer
from warriorcoder.config import ArenaConfig, ExpertConfig, GenerationConfig, HubConfig
from warriorcoder.errors import EvaluationError
from warriorcoder.evaluation import (
    RESPONSE_PREFIX,
    EvalOptions,
    Settings,
    estimate_pass_at_k,
    evaluate,
    load_evalplus,
    load_human_eval,
    resolve,
)
from warriorcoder.evaluation.prompts import chat_instruction, render_instruct_prompt

FIXTURES = Path(__file__).parent / "fixtures" / "evalplus"
HE_PLUS = FIXTURES / "HumanEvalPlus-Mini4.jsonl.gz"
MBPP_PLUS = FIXTURES / "MbppPlus-Mini4.jsonl.gz"
HUMAN_EVAL = load_human_eval()
FAST = Settings(workers=4)

Reply = Callable[[Any], str]


def _problem_for(kind: str, payload: dict[str, Any]) -> Any:
    text = payload["inputs"] if kind == "generate" else payload["messages"][-1]["content"]
    for problem in HUMAN_EVAL.problems:
        if problem.prompt.strip() in text:
            return problem
    raise AssertionError(f"no problem in {text[:200]!r}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., tuple[ArenaConfig, TGITestServer, list]]]:
    """A TGI test server whose `coder` answers each HumanEval problem with `reply(problem)`."""
    servers: list[TGITestServer] = []

    def start(reply: Reply, tokenizer: str | None = None):
        seen: list[tuple[str, dict[str, Any]]] = []

        def respond(kind: str, payload: dict[str, Any], model_name: str) -> str:
            seen.append((kind, payload))
            return reply(_problem_for(kind, payload))

        server = TGITestServer(
            {"coder": FakeModel("org/coder", responder=respond), "other": FakeModel("org/other")}
        ).start()
        servers.append(server)
        config = ArenaConfig(
            experts=[
                ExpertConfig(name="coder", model_id="org/coder", urls=[server.url("coder")],
                             tokenizer=tokenizer),
                ExpertConfig(name="other", model_id="org/other", urls=[server.url("other")]),
            ],
            generation=GenerationConfig(
                journal=tmp_path / "journal.sqlite", max_retries=1, backoff_base_s=0.005,
                backoff_max_s=0.01, timeout_s=5.0,
            ),
            hub=HubConfig(root=tmp_path / "hub"),
        )
        return config, server, seen

    yield start
    for server in servers:
        server.stop()


def _config(tmp_path: Path) -> ArenaConfig:
    return ArenaConfig(
        experts=[ExpertConfig(name=n, model_id=f"org/{n}", urls=["http://127.0.0.1:9"])
                 for n in ("a", "b")],
        generation=GenerationConfig(journal=tmp_path / "journal.sqlite"),
        hub=HubConfig(root=tmp_path / "hub"),
    )


# -- scoring: HumanEval's canonical solutions, EvalPlus's numbers -----------------------------


def test_humaneval_canonical_solutions_score_164_of_164(tmp_path: Path) -> None:
    samples = tmp_path / "canonical.jsonl"
    samples.write_text("".join(
        json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) + "\n"
        for p in HUMAN_EVAL.problems
    ))
    report = evaluate(_config(tmp_path), None, EvalOptions(samples=samples, settings=FAST))
    assert report.benchmarks == ["humaneval"]
    assert report.scores()["humaneval"]["pass@1"] == 1.0
    assert report.counts()["passed"] == 164
    assert "bubblewrap" in report.isolation or "unshare" in report.isolation


def _evalplus_results(tmp_path: Path, dataset: str, fixture: Path, samples: Path) -> dict:
    """Run `evalplus.evaluate` on local files only (override paths, private cache)."""
    import subprocess
    import sys

    work = tmp_path / f"evalplus-{dataset}"
    work.mkdir()
    copy = work / samples.name
    copy.write_bytes(samples.read_bytes())
    variable = "HUMANEVAL_OVERRIDE_PATH" if dataset == "humaneval" else "MBPP_OVERRIDE_PATH"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "XDG_CACHE_HOME": str(work / "cache"),
           variable: str(fixture), "HF_HUB_OFFLINE": "1"}
    return {"process": subprocess.Popen(
        [sys.executable, "-m", "evalplus.evaluate", "--dataset", dataset, "--samples", str(copy),
         "--parallel", "2"], env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True), "result": work / copy.name.replace(".jsonl", "_eval_results.json")}


def test_fixture_scores_equal_evalplus_evaluate(tmp_path: Path) -> None:
    """evalplus (a dev dependency) scores the same samples on the same local files."""
    runs = {
        "humaneval": _evalplus_results(tmp_path, "humaneval", HE_PLUS,
                                       FIXTURES / "samples-humaneval.jsonl"),
        "mbpp": _evalplus_results(tmp_path, "mbpp", MBPP_PLUS, FIXTURES / "samples-mbpp.jsonl"),
    }
    ours = {
        "humaneval": evaluate(_config(tmp_path), None, EvalOptions(
            samples=FIXTURES / "samples-humaneval.jsonl", humaneval_plus=str(HE_PLUS),
            settings=FAST)),
        "mbpp": evaluate(_config(tmp_path), None, EvalOptions(
            samples=FIXTURES / "samples-mbpp.jsonl", mbpp_plus=str(MBPP_PLUS), settings=FAST)),
    }
    for dataset, run in runs.items():
        output, _ = run["process"].communicate(timeout=240)
        assert run["process"].returncode == 0, output
        theirs = json.loads(run["result"].read_text())["eval"]
        report = ours[dataset]
        statuses = [(r.task_id, r.base_status, r.plus_status) for r in report.rows]
        expected = [(task, s["base_status"], s["plus_status"])
                    for task, per_task in theirs.items() for s in per_task]
        assert sorted(statuses) == sorted(expected), dataset
        scores = report.scores()
        base = sum(estimate_pass_at_k(len(v), sum(s["base_status"] == "pass" for s in v), 1)
                   for v in theirs.values()) / len(theirs)
        plus = sum(estimate_pass_at_k(len(v), sum(s["base_status"] == s["plus_status"] == "pass"
                                                  for s in v), 1)
                   for v in theirs.values()) / len(theirs)
        assert scores[dataset]["pass@1"] == pytest.approx(base)
        assert scores[f"{dataset}+"]["pass@1"] == pytest.approx(plus)
        assert f"pass@1:\t{base:.3f}" in output and f"pass@1:\t{plus:.3f}" in output
    # the fixtures discriminate: some samples pass base only, some fail both
    he = ours["humaneval"].scores()
    assert he["humaneval"]["pass@1"] > he["humaneval+"]["pass@1"] > 0


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    from evalplus.eval import estimate_pass_at_k as theirs

    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(1, 30)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert estimate_pass_at_k(n, c, k) == pytest.approx(float(theirs(n, [c], k)[0]))


# -- EvalPlus's sanitiser and prompts ----------------------------------------------------------

REPLIES = [
    "```python\ndef add(x, y):\n    return x + y\n```",
    "Here you go:\n```\npython\nimport math\ndef helper(a):\n    return a\n\n"
    "def add(x, y):\n    return helper(x) + y\n\nprint(add(1, 2))\n```\nThat's it.",
    "def add(x, y):\n    return x+y\nif __name__ == '__main__':\n    print(add(1, 2))\n",
    "LIMIT = 3\nclass Box:\n    pass\n@decorated\ndef add(x, y):\n    return LIMIT\n",
    "I cannot do that.",
    "```python\ndef add(x, y):\n    total = x + y\n",
]


@pytest.mark.parametrize("reply", REPLIES)
def test_sanitize_matches_evalplus(reply: str) -> None:
    from evalplus.sanitize import sanitize as theirs

    from warriorcoder.evaluation import sanitize

    assert sanitize(reply, "add") == theirs(reply, entrypoint="add")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama without a chat template (a base model), built once."""
    from tests.support.tiny_models import build_tiny_llama

    folder = tmp_path_factory.mktemp("tiny") / "base"
    build_tiny_llama(folder, hidden_size=32, num_layers=1, max_positions=2048)
    return folder


def _copy(source: Path, folder: Path) -> Path:
    import shutil

    shutil.copytree(source, folder)
    return folder


@pytest.fixture(scope="module")
def chat_checkpoint(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with a chat template (as `warriorcoder train` writes checkpoints)."""
    from transformers import AutoTokenizer

    from warriorcoder.training.formatting import PromptFormat

    folder = _copy(tiny_base, tmp_path_factory.mktemp("ckpt") / "run" / "final")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    fmt = PromptFormat("{system}\n\n@@ Instruction\n{instruction}\n\n@@ Response\n", "Sys")
    tokenizer.chat_template = fmt.chat_template()
    tokenizer.save_pretrained(folder)
    return folder


def test_instruct_prompt_is_evalplus_make_raw_chat_prompt(chat_checkpoint: Path) -> None:
    from evalplus.provider.utility import make_raw_chat_prompt
    from transformers import AutoTokenizer

    from warriorcoder.evaluation import INSTRUCTION_PREFIX

    tokenizer = AutoTokenizer.from_pretrained(chat_checkpoint)
    problem = HUMAN_EVAL.problems[3]
    theirs = make_raw_chat_prompt(problem.prompt.strip() + "\n", INSTRUCTION_PREFIX,
                                  RESPONSE_PREFIX, tokenizer)
    ours = render_instruct_prompt(problem, tokenizer)
    bos = tokenizer.bos_token or ""
    assert bos + ours == theirs or ours == theirs
    assert ours.endswith(f"{RESPONSE_PREFIX}\n```python\n")


# -- generation through the journal -------------------------------------------------------------


def _body(problem: Any) -> str:
    return f"Sure:\n```python\n{problem.prompt}{problem.canonical_solution}```\nDone."


def test_chat_route_scores_and_resumes_from_the_journal(served, tmp_path: Path) -> None:
    config, server, seen = served(_body)
    url = server.url("coder")
    report = evaluate(config, url, EvalOptions(limit=3, settings=FAST))
    assert report.prompt_mode == "chat"
    assert report.scores()["humaneval"]["pass@1"] == 1.0
    kind, payload = seen[0]
    assert kind == "chat"
    assert payload["messages"] == [
        {"role": "user", "content": chat_instruction(HUMAN_EVAL.problems[0])}
    ]
    assert payload["temperature"] == 0 and payload["max_tokens"] == 768
    samples = (report.out_dir / "humaneval_samples.jsonl").read_text().splitlines()
    sent = server.stats.total_served
    again = evaluate(config, url, EvalOptions(limit=4, settings=FAST))
    assert server.stats.total_served == sent + 1, "only the new problem is sent"
    assert [r.completion for r in again.rows[:3]] == [r.completion for r in report.rows]
    assert [json.loads(line)["task_id"] for line in samples] == [
        f"HumanEval/{i}" for i in range(3)
    ]
    assert "def " in json.loads(samples[0])["solution"]
    assert "```" not in json.loads(samples[0])["solution"], "sanitised"


def test_failures_are_recorded_not_dropped(served, tmp_path: Path) -> None:
    replies = {0: "I am sorry, I cannot.", 1: "", 2: "```python\nwhile True: pass\n"}

    def reply(problem: Any) -> str:
        return replies.get(int(problem.task_id.split("/")[1]), "```python\n    return 0\n```")

    config, server, _ = served(reply)
    report = evaluate(config, "coder", EvalOptions(
        limit=4, settings=Settings(workers=4, check_timeout_s=2.0)))
    statuses = [row.status for row in report.rows]
    assert statuses[0] == "failed" and statuses[1] == "no_code"
    assert statuses[2] == "timed_out" and statuses[3] == "failed"
    assert report.scores()["humaneval"]["pass@1"] == 0.0
    server.set_down("other")
    down = evaluate(config, "other", EvalOptions(limit=2, settings=FAST))
    assert [row.status for row in down.rows] == ["generation_failed"] * 2
    assert down.scores()["humaneval"]["samples"] == 2, "counted as failures"


def test_instruct_mode_prefills_the_raw_prompt(served, chat_checkpoint: Path) -> None:
    def reply(problem: Any) -> str:  # the model continues after the pre-filled fence
        return f"{problem.prompt}{problem.canonical_solution}\n```\nExplanation follows."

    config, _, seen = served(reply, tokenizer=str(chat_checkpoint))
    report = evaluate(config, "coder", EvalOptions(limit=2, settings=FAST))
    assert report.prompt_mode == "instruct"
    kind, payload = seen[0]
    assert kind == "generate"
    assert payload["inputs"].endswith(f"{RESPONSE_PREFIX}\n```python\n")
    assert report.scores()["humaneval"]["pass@1"] == 1.0
    assert "Explanation" not in report.rows[0].solution


def test_pass_at_k_with_n_samples(served) -> None:
    def reply(problem: Any) -> str:
        return _body(problem)

    config, _, seen = served(reply)
    report = evaluate(config, "coder", EvalOptions(limit=2, n=3, temperature=0.8, settings=FAST))
    assert len(report.rows) == 6 and [r.sample for r in report.rows[:3]] == [0, 1, 2]
    seeds = sorted({payload["seed"] for _, payload in seen})
    assert seeds == [0, 1, 2]
    assert all(payload["temperature"] == 0.8 for _, payload in seen)
    assert report.decoding["decoding"] == "sampling"
    assert set(report.scores()["humaneval"]) >= {"pass@1"}


def test_completion_mode_for_a_base_model(tmp_path: Path, tiny_base: Path) -> None:
    folder = _copy(tiny_base, tmp_path / "base" / "final")
    report = evaluate(_config(tmp_path), str(folder),
                      EvalOptions(limit=1, max_new_tokens=3, settings=FAST))
    assert report.prompt_mode == "completion"
    row = report.rows[0]
    assert row.prompt == HUMAN_EVAL.problems[0].prompt.strip() + "\n"
    assert row.status in ("failed", "no_code", "passed", "timed_out")
    readme = (folder / "README.md").read_text()
    assert "## Evaluation" in readme and "| humaneval |" in readme


# -- benchmarks and files ---------------------------------------------------------------------


def test_missing_benchmark_files_say_where_to_get_them() -> None:
    where = r"HumanEvalPlus.jsonl.gz from https://github.com/evalplus.*--humaneval-plus PATH"
    with pytest.raises(EvaluationError, match=where):
        resolve(["humaneval+"])
    with pytest.raises(EvaluationError, match=r"mbppplus_release.*--mbpp-plus PATH"):
        resolve(["mbpp"])
    with pytest.raises(EvaluationError, match="unknown benchmark 'apps'"):
        resolve(["apps"])
    sets, notes = resolve(None)
    assert [s.benchmarks for s in sets] == [("humaneval",)]
    assert any("--humaneval-plus" in n for n in notes) and any("--mbpp-plus" in n for n in notes)
    sets, _ = resolve(None, str(HE_PLUS), str(MBPP_PLUS))
    assert [b for s in sets for b in s.benchmarks] == ["humaneval", "humaneval+", "mbpp", "mbpp+"]


def test_bad_release_files_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "HumanEvalPlus.jsonl"
    broken.write_text(json.dumps({"task_id": "HumanEval/0", "prompt": "x"}) + "\n")
    with pytest.raises(EvaluationError, match=r"row 1 lacks .*base_input"):
        load_evalplus("humaneval", broken)
    with pytest.raises(EvaluationError, match="no such file"):
        load_evalplus("mbpp", tmp_path / "missing.jsonl.gz")
    mbpp = load_evalplus("mbpp", MBPP_PLUS)
    assert mbpp.problems[0].base_input[0] == [(3, 4, 5, 6), (5, 7, 4, 10)], "EvalPlus tuples"
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "Mbpp/2", "solution": "x"}) + "\n")
    with pytest.raises(EvaluationError, match="--mbpp-plus"):
        evaluate(_config(tmp_path), None, EvalOptions(samples=samples))


def test_evals_dataset_and_cards(tmp_path: Path) -> None:
    from datasets import load_dataset

    from warriorcoder.dataset_cards import set_evaluation_section
    from warriorcoder.evaluation import publish_report

    config = _config(tmp_path)
    report = evaluate(config, None, EvalOptions(
        samples=FIXTURES / "samples-humaneval.jsonl", humaneval_plus=str(HE_PLUS), settings=FAST))
    ref = publish_report(config, report)
    rows = load_dataset(ref.location, split="train")
    assert len(rows) == len(report.rows) == 9
    assert set(rows.column_names) >= {"task_id", "benchmark", "prompt", "completion", "status",
                                      "error", "duration_s", "base_status", "plus_status"}
    card = (Path(ref.location) / "README.md").read_text()
    assert "| humaneval+ |" in card and "bubblewrap" in card
    assert str(tmp_path) not in card and "http" not in card and "<redacted>" not in card
    assert "skipped mbpp, mbpp+: no --mbpp-plus given" in card
    from huggingface_hub import DatasetCard

    assert DatasetCard(card).data.to_dict()["warriorcoder"]["dataset"] == "evals"

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "README.md").write_text("# Model\n\n## Training\n\nsteps\n")
    set_evaluation_section(folder, "first table")
    set_evaluation_section(folder, "| humaneval | 0.5 |")
    text = (folder / "README.md").read_text()
    assert text.count("## Evaluation") == 1 and "first table" not in text
    assert "## Training\n\nsteps" in text and text.rstrip().endswith("| humaneval | 0.5 |")


def test_cli_scores_samples_and_publishes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from warriorcoder import cli

    config = tmp_path / "arena.yaml"
    config.write_text(
        "experts:\n"
        "  - {name: a, model_id: org/a, urls: ['http://127.0.0.1:9']}\n"
        "  - {name: b, model_id: org/b, urls: ['http://127.0.0.1:9']}\n"
        f"hub: {{root: {tmp_path / 'hub'}}}\n"
    )
    args = ["evaluate", "-c", str(config), "--samples", str(FIXTURES / "samples-mbpp.jsonl"),
            "--mbpp-plus", str(MBPP_PLUS), "--benchmarks", "mbpp,mbpp+", "--workers", "4",
            "--publish"]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert "mbpp: pass@1 0.6250" in result.output and "mbpp+: pass@1 0.6250" in result.output
    assert "isolation: " in result.output
    assert "published: local/warriorcoder-evals@v1" in result.output
    again = CliRunner().invoke(cli.main, args)  # the same samples, scored again
    assert "reused: local/warriorcoder-evals@v1" in again.output, again.output
    missing = CliRunner().invoke(cli.main, ["evaluate", "-c", str(config), "--samples",
                                            str(FIXTURES / "samples-mbpp.jsonl")])
    assert missing.exit_code == 1
    assert "Error: " in missing.output and "--mbpp-plus" in missing.output


def test_scoring_a_samples_file_needs_no_arena_config(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """As EvalPlus: `evaluate --samples` in a folder without arena.yaml scores the file."""
    from click.testing import CliRunner

    from warriorcoder import cli

    monkeypatch.chdir(tmp_path)
    problems = HUMAN_EVAL.problems[:3]
    Path("samples.jsonl").write_text("".join(
        json.dumps({"task_id": p.task_id,
                    "completion": p.canonical_solution if i else "    return None\n"}) + "\n"
        for i, p in enumerate(problems)))
    result = CliRunner().invoke(cli.main, ["evaluate", "--samples", "samples.jsonl",
                                           "--limit", "3", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "humaneval: pass@1 0.6667 (2/3 samples passed" in result.output, result.output
    assert not Path("arena.yaml").exists() and (tmp_path / "eval" / "samples").is_dir()
    refused = CliRunner().invoke(cli.main, ["evaluate", "--samples", "samples.jsonl",
                                            "--publish"])
    assert refused.exit_code == 1 and "arena.yaml" in refused.output
