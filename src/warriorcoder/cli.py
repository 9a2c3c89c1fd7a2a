"""The `warriorcoder` command: one sub-command per phase; init, run, status, train, evaluate,
check-judges, check-arena, report.

Every error a user can cause or fix is a `WarriorcoderError`: the group's handler prints it as
`Error: ...` and exits 1 (with the traceback under `-v`). Anything else is a bug: traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from warriorcoder.builders import PHASES, REGISTRY
from warriorcoder.config import ArenaConfig, load_config
from warriorcoder.errors import WarriorcoderError

CONFIG_OPTION = click.option(
    "--config", "-c", "config_path", type=click.Path(path_type=Path), default="arena.yaml",
    show_default=True, help="The arena config (YAML); `warriorcoder init` writes one.",
)
DRY_RUN_OPTION = click.option(
    "--dry-run", is_flag=True,
    help="Print the cost plan (calls, tokens, rows) and stop; no model or server is used.",
)
FORCE_OPTION = click.option(
    "--force", is_flag=True,
    help="Publish a new version even when the latest one was built from the same inputs.",
)


class WarriorcoderGroup(click.Group):
    """The one top-level error handler (as pypa/build has): user errors print one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WarriorcoderError as error:
            if ctx.find_root().params.get("verbose"):
                traceback.print_exc()
            click.echo(f"Error: {error}", err=True)
            ctx.exit(1)


@click.group(cls=WarriorcoderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log debug messages; show tracebacks.")
@click.version_option(package_name="warriorcoder")
def main(verbose: bool) -> None:
    """Turn a pool of expert code LLMs into versioned datasets and a fine-tuned code model,
    by the WarriorCoder method (arXiv:2412.17395)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default="arena.yaml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented example arena config to PATH."""
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    path.write_text(files("warriorcoder").joinpath("templates/arena.yaml").read_text())
    click.echo(f"wrote {path}; edit the experts' URLs, then run `warriorcoder run -c {path}`")


def _announce(phase: str, ref: Any) -> None:
    verb = "reused" if ref.reused else "published"
    click.echo(f"{phase}: {verb} {ref.spec()} ({ref.location})")


def _phase_command(phase: str) -> click.Command:
    dataset = REGISTRY[phase].dataset

    @click.command(name=phase,
                   help=f"Run the `{phase}` phase and publish a new `{dataset}` version.")
    @CONFIG_OPTION
    @click.option("--input", "input_version", default=None, metavar="vN",
                  help="Version of the parent dataset to read (default: its latest, printed).")
    @click.option("--from-card", "from_card", default=None, metavar="REPO@vN",
                  help="Rebuild a version from the config and parent its card recorded, into "
                       "the hub of --config.")
    @DRY_RUN_OPTION
    @FORCE_OPTION
    def command(config_path: Path, input_version: str | None, from_card: str | None,
                dry_run: bool, force: bool) -> None:
        from warriorcoder.hub import open_store
        from warriorcoder.runner import plan_phase, resolve_parent, run_phase

        if from_card:
            from warriorcoder.hub.rebuild import config_from_card

            config, input_version = config_from_card(from_card, phase, config_path)
            force = True  # a rebuild publishes, even over an identical latest version
        else:
            config = load_config(config_path)
        store = open_store(config.hub)
        if dry_run:
            parent = resolve_parent(store, REGISTRY[phase], input_version)
            rows = store.load(parent.dataset, parent.version) if parent else None
            _print_plans(config, [(phase, plan_phase(phase, config, rows))])
            return
        _announce(phase, run_phase(phase, config, input_version=input_version, store=store,
                                   force=force))

    return command


for _phase in PHASES:
    main.add_command(_phase_command(_phase))


def _print_plans(config: ArenaConfig, plans: list[tuple[str, Any]]) -> None:
    from warriorcoder.dataset_cards import markdown_table
    from warriorcoder.hub import open_store
    from warriorcoder.planning import PLAN_HEADER, plan_rows, training_lines
    from warriorcoder.runner import measured_seconds_per_call

    store = open_store(config.hub)
    rows = plan_rows(plans, lambda name: measured_seconds_per_call(store, name))
    click.echo("Cost plan (no call made; tokens are estimates, generated = the max_new_tokens "
               "upper bound; time from the last build's measured seconds per call):")
    click.echo(markdown_table(PLAN_HEADER, rows))
    for name, plan in plans:
        for note in plan.notes:
            click.echo(f"  {name}: {note}")
    if plans and plans[-1][0] == PHASES[-1]:
        for line in training_lines(config.train, plans[-1][1].rows_out):
            click.echo(f"  {line}")


@main.command()
@CONFIG_OPTION
@click.option("--until", type=click.Choice(PHASES), default=PHASES[-1], show_default=True,
              help="Last phase to run.")
@DRY_RUN_OPTION
@FORCE_OPTION
def run(config_path: Path, until: str, dry_run: bool, force: bool) -> None:
    """Run the phases from mine to --until, each reading the version the previous one wrote."""
    from warriorcoder.generation import ExpertPool
    from warriorcoder.hub import open_store
    from warriorcoder.runner import plan_pipeline, run_phase

    config = load_config(config_path)
    plans = plan_pipeline(config, until)
    _print_plans(config, plans)
    if dry_run:
        return
    from warriorcoder.generation.run_progress import RunProgress
    from warriorcoder.runner import measured_seconds_per_call

    store = open_store(config.hub)
    previous = None
    written = []
    line = [(name, plan.calls, measured_seconds_per_call(store, name) if plan.calls else None)
            for name, plan in plans]  # one line for the run: phase k of n, calls, ETA
    with ExpertPool.from_config(config) as pool, RunProgress(line) as progress:
        for index, phase in enumerate(PHASES[: PHASES.index(until) + 1]):
            click.echo(progress.start(index), err=True)
            ref = run_phase(phase, config, store=store, pool=pool, force=force,
                            input_version=previous.version if previous else None)
            _announce(phase, ref)
            written.append((phase, ref))
            previous = ref
    _print_next_steps(config, config_path, written)


def _print_next_steps(config: ArenaConfig, config_path: Path, written: list[tuple[str, Any]]
                      ) -> None:
    """What a user needs next: the versions, where they are, how to load and train."""
    click.echo("\nVersions:")
    for phase, ref in written:
        state = "reused" if ref.reused else "new"
        click.echo(f"  {phase:8s} {ref.spec():45s} {state:6s} {ref.location}")
    last_phase, last = written[-1]
    if last_phase != PHASES[-1]:
        return
    click.echo("\nLoad the SFT data:\n")
    click.echo("  " + last.load_snippet(relative_to=Path.cwd()).replace("\n", "\n  ").rstrip())
    click.echo(f"\nTrain on it:\n\n  warriorcoder train -c {config_path} --dataset "
               f"{last.spec()}")


@main.command()
@CONFIG_OPTION
def status(config_path: Path) -> None:
    """Print each artifact's versions (the phase datasets, model, evals) and their lineage."""
    from warriorcoder.hub import ARTIFACTS, open_store
    from warriorcoder.hub.tree import Node, render_tree

    config = load_config(config_path)
    store = open_store(config.hub)
    nodes = []
    for artifact in ARTIFACTS:
        refs = store.versions(artifact.name)
        if not refs and not artifact.rebuildable:
            continue  # the model and evals are listed once there is one
        click.echo(f"{artifact.command:8s} {config.hub.repo_id(artifact.name)}: "
                   f"{len(refs)} version{'s' if len(refs) != 1 else ''}")
        for ref in refs:
            lineage = store.lineage(ref)
            if lineage is None:
                nodes.append(Node(ref.spec(), None, None, None, "(no warriorcoder lineage)"))
                continue
            parent = lineage.get("parent")
            rows = list((lineage.get("counts") or {}).values())
            nodes.append(Node(ref.spec(), f"{parent['repo_id']}@{parent['version']}"
                              if parent else None, rows[-1] if rows else None,
                              lineage.get("created_at")))
    if nodes:
        click.echo("\nLineage (each version under the one it was built from; rows, created):")
        for line in render_tree(nodes):
            click.echo("  " + line)


@main.command()
@CONFIG_OPTION
@click.option("--dataset", default=None, metavar="REPO_OR_FOLDER@vN",
              help="The sft_final version to train on (default: config, else the latest, printed).")
@click.option("--resume", is_flag=True, help="Resume from the last checkpoint in output_dir.")
@click.option("--push", is_flag=True, help="Publish the checkpoint and its card to the hub store.")
@click.option("--force", is_flag=True,
              help="Train again even when output_dir holds a checkpoint of the same data and "
                   "settings.")
def train(config_path: Path, dataset: str | None, resume: bool, push: bool, force: bool) -> None:
    """Fine-tune the target model on sft_final with DeepSpeed ZeRO (README: launchers)."""
    from warriorcoder.training import train_from_config

    config = load_config(config_path)
    result = train_from_config(config, dataset=dataset, resume=resume, push=push, force=force)
    click.echo(f"train: done: {result}")


@main.command()
@CONFIG_OPTION
@click.argument("target", required=False)
@click.option("--benchmarks", default=None, metavar="LIST",
              help="Comma-separated: humaneval, humaneval+, mbpp, mbpp+ (default: every one "
                   "whose problems are at hand; the others are announced).")
@click.option("--humaneval-plus", default=None, metavar="PATH_OR_HUB_ID",
              help="EvalPlus's HumanEvalPlus.jsonl.gz (humanevalplus_release v0.1.10).")
@click.option("--mbpp-plus", default=None, metavar="PATH_OR_HUB_ID",
              help="EvalPlus's MbppPlus.jsonl.gz (mbppplus_release v0.2.0); MBPP and MBPP+.")
@click.option("--samples", type=click.Path(path_type=Path), default=None,
              help="Score this EvalPlus samples.jsonl instead of generating (TARGET optional).")
@click.option("--n", "n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples per problem; 1 is greedy pass@1, more are sampled for pass@k.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.8, show_default=True,
              help="Sampling temperature when --n > 1 (top-p 0.95).")
@click.option("--prompt-mode", type=click.Choice(["instruct", "chat", "completion"]),
              default=None, help="Default: instruct with a chat template, completion without, "
                                 "chat when no tokenizer is at hand.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N problems of each benchmark.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=768, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Programs run at once (default: half the CPUs, as EvalPlus).")
@click.option("--out-dir", type=click.Path(path_type=Path), default=None,
              help="Where the samples, results and report go (default: beside the journal).")
@click.option("--publish", is_flag=True, help="Publish the rows as the next `evals` version.")
def evaluate(config_path: Path, target: str | None, benchmarks: str | None,
             humaneval_plus: str | None, mbpp_plus: str | None, samples: Path | None, n: int,
             temperature: float, prompt_mode: str | None, limit: int | None,
             max_new_tokens: int, workers: int | None, out_dir: Path | None,
             publish: bool) -> None:
    """pass@k on HumanEval(+)/MBPP(+) as EvalPlus scores them, every program sandboxed, of
    TARGET: a checkpoint folder, a TGI URL, or an expert of the config."""
    from warriorcoder.evaluation import EvalOptions, Settings
    from warriorcoder.evaluation import evaluate as run_evaluation

    # Scoring a samples file needs no arena (as EvalPlus): the default config may be absent.
    given = click.get_current_context().get_parameter_source("config_path")
    config = (None if samples is not None and not publish and not config_path.exists()
              and given == click.core.ParameterSource.DEFAULT else load_config(config_path))
    names = [b.strip() for b in benchmarks.split(",") if b.strip()] if benchmarks else None
    options = EvalOptions(
        benchmarks=names, humaneval_plus=humaneval_plus, mbpp_plus=mbpp_plus, samples=samples,
        limit=limit, n=n, temperature=temperature, prompt_mode=prompt_mode,
        max_new_tokens=max_new_tokens, out_dir=out_dir, settings=Settings(workers=workers),
        publish=publish,
    )
    report = run_evaluation(config, target, options)
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(f"isolation: {report.isolation}")
    click.echo(report.summary())
    click.echo(f"report: {report.report_path}")
    if report.published is not None:
        verb = "reused" if report.published.reused else "published"
        click.echo(f"{verb}: {report.published.spec()}")



@main.command("check-judges")
@CONFIG_OPTION
@click.option("--pairs", type=click.IntRange(min=1), default=10, show_default=True,
              help="HumanEval problems to make pairs of (each kind gets this many).")
@click.option("--kinds", default="mutant,swap", show_default=True, metavar="LIST",
              help="Wrong answers: mutant (one operator or constant changed, failing the "
                   "tests), swap (another problem's solution).")
@click.option("--judges", default=None, metavar="LIST",
              help="Experts to check (default: judge.judges, else every expert).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Draws the problems and the mutants.")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Write every pair and vote here as JSON lines.")
def check_judges(config_path: Path, pairs: int, kinds: str, judges: str | None, seed: int,
                 output: Path | None) -> None:
    """Ask each judge, as the judge phase does, to tell a right HumanEval answer from a wrong
    one, in both orders, and print how often it is right: before paying for the votes of a
    whole arena, see whether its judges can judge."""
    import json

    from warriorcoder.evaluation.judges import JudgeCheck, build_pairs, check_judges, judge_names

    config = load_config(config_path)
    kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
    judge_list = judge_names(config, [j.strip() for j in judges.split(",") if j.strip()]
                             if judges else None)
    known, skipped = build_pairs(pairs, kind_list, seed)  # type: ignore[arg-type]
    for task_id, why in skipped.items():
        click.echo(f"note: {task_id} passed over: {why}")
    report = JudgeCheck(known, check_judges(config, known, judge_list), skipped)
    click.echo(report.table())
    if output is not None:
        with output.open("w", encoding="utf-8") as handle:
            for pair in known:
                handle.write(json.dumps({"pair": dataclasses.asdict(pair)}) + "\n")
            for vote in report.votes:
                handle.write(json.dumps({"vote": {**dataclasses.asdict(vote),
                                                  "picked": vote.picked}}) + "\n")
        click.echo(f"pairs and votes: {output}")


@main.command("check-arena")
@CONFIG_OPTION
@click.option("--problems", type=click.IntRange(min=1, max=164), default=20, show_default=True,
              help="The first N HumanEval problems (EvalPlus's instruction as the battle's).")
@click.option("--modes", default="off,vote,first,record", show_default=True, metavar="LIST",
              help="judge.execution modes to judge the same battles with.")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Write the figures (and every target) here as JSON.")
def check_arena(config_path: Path, problems: int, modes: str, output: Path | None) -> None:
    """Every expert answers N HumanEval problems, every pair battles, each judging mode votes
    and select picks targets (the phases' own code, through the journal); then every answer is
    scored with the problems' own tests: do the targets beat every single expert?"""
    from warriorcoder.evaluation.arena_check import check_arena as run_check

    config = load_config(config_path)
    report = run_check(config, problems, [m.strip() for m in modes.split(",") if m.strip()])
    click.echo(report.table())
    if output is not None:
        report.write(output)
        click.echo(f"figures: {output}")


@main.command()
@CONFIG_OPTION
@click.option("--dataset", "spec", required=True, metavar="DATASET@vN",
              help="The version to report on, e.g. sft_final@v3 (or its repo id @vN).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--battles", type=click.IntRange(min=0), default=3, show_default=True,
              help="Battles to show whole (instruction, both answers, votes, target).")
def report(config_path: Path, spec: str, output: Path, battles: int) -> None:
    """Write one self-contained HTML page for a lineage: the funnel, the cards' figures, the
    cost per phase, the model and evals built from it, and a few battles shown whole."""
    from warriorcoder.hub import open_store
    from warriorcoder.report import build_report

    config = load_config(config_path)
    page = build_report(open_store(config.hub), spec, battles=battles)
    output.write_text(page, encoding="utf-8")
    click.echo(f"report: {output} ({len(page) // 1024} KiB, open it in a browser)")

if __name__ == "__main__":  # pragma: no cover
    main()
