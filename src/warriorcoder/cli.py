"""The `warriorcoder` command: one sub-command per phase; init, run, status, train, evaluate."""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from warriorcoder.config import (
    PHASE_DATASETS,
    PHASES,
    ArenaConfig,
    ConfigError,
    HubConfig,
    load_config,
)

CONFIG_OPTION = click.option(
    "--config", "-c", "config_path", type=click.Path(path_type=Path), default="arena.yaml",
    show_default=True, help="The arena config (YAML); `warriorcoder init` writes one.",
)


def _load(config_path: Path) -> ArenaConfig:
    try:
        return load_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(f"{type(error).__name__}: {error}")


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that mean "fix the input or the servers and run again" (shown without traceback)."""
    from warriorcoder.builders.base import PhaseError
    from warriorcoder.hub import HubError

    errors: list[type[Exception]] = [PhaseError, HubError, ConfigError, FileNotFoundError]
    try:
        from warriorcoder.generation import GenerationFailed
    except ImportError:  # pragma: no cover - generation layer not importable
        pass
    else:
        errors.append(GenerationFailed)
    return tuple(errors)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log debug messages.")
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


def _phase_command(phase: str) -> click.Command:
    dataset = PHASE_DATASETS[phase]

    @click.command(name=phase,
                   help=f"Run the `{phase}` phase and publish a new `{dataset}` version.")
    @CONFIG_OPTION
    @click.option("--input", "input_version", default=None, metavar="vN",
                  help="Version of the parent dataset to read (default: its latest, printed).")
    @click.option("--from-card", "from_card", default=None, metavar="REPO@vN",
                  help="Rebuild a version from the config and parent its card recorded.")
    def command(config_path: Path, input_version: str | None, from_card: str | None) -> None:
        from warriorcoder.builders.base import run_phase
        from warriorcoder.hub import HubStore

        try:
            if from_card:
                config, input_version = _config_from_card(from_card, phase, config_path)
            else:
                config = _load(config_path)
            ref = run_phase(phase, config, input_version=input_version,
                            store=HubStore.from_config(config.hub))
        except _user_errors() as error:
            raise _fail(error) from None
        click.echo(f"{phase}: published {ref.spec()} ({ref.location})")

    return command


for _phase in PHASES:
    main.add_command(_phase_command(_phase))


def _config_from_card(spec: str, phase: str, config_path: Path) -> tuple[ArenaConfig, str | None]:
    """The config and parent version a card recorded; the hub is read as in `--config` (if any)."""
    from warriorcoder.dataset_cards import card_lineage
    from warriorcoder.hub import HubStore

    repo, _, version = spec.rpartition("@")
    if not repo or not version:
        raise click.ClickException(f"--from-card takes REPO@vN, got {spec!r}")
    hub = _load(config_path).hub if config_path.exists() else HubConfig()
    store = HubStore.from_config(hub)
    if repo != hub.repo_id(phase):
        raise click.ClickException(
            f"--from-card {spec}: `{phase}` writes {hub.repo_id(phase)}, not {repo}"
        )
    lineage = card_lineage(store.read_card(phase, version))
    if lineage.get("phase") != phase:
        raise click.ClickException(f"{spec} was written by `{lineage.get('phase')}`, not `{phase}`")
    try:
        config = ArenaConfig.model_validate(lineage["config"])
    except Exception as error:  # pydantic's ValidationError, reported with its fields
        raise click.ClickException(f"the config recorded in {spec} is not valid: {error}") from None
    parent = lineage.get("parent")
    return config, parent["version"] if parent else None


@main.command()
@CONFIG_OPTION
@click.option("--until", type=click.Choice(PHASES), default=PHASES[-1], show_default=True,
              help="Last phase to run.")
def run(config_path: Path, until: str) -> None:
    """Run the phases from mine to --until, each reading the version the previous one wrote."""
    from warriorcoder.builders.base import run_phase
    from warriorcoder.generation import ExpertPool
    from warriorcoder.hub import HubStore

    config = _load(config_path)
    store = HubStore.from_config(config.hub)
    previous = None
    with ExpertPool.from_config(config) as pool:
        for phase in PHASES[: PHASES.index(until) + 1]:
            try:
                ref = run_phase(phase, config, store=store, pool=pool,
                                input_version=previous.version if previous else None)
            except _user_errors() as error:
                raise _fail(error) from None
            click.echo(f"{phase}: published {ref.spec()} ({ref.location})")
            previous = ref


@main.command()
@CONFIG_OPTION
def status(config_path: Path) -> None:
    """Print each phase's versions and their lineage from the hub store."""
    from warriorcoder.dataset_cards import card_lineage
    from warriorcoder.hub import HubError, HubStore

    config = _load(config_path)
    store = HubStore.from_config(config.hub)
    for phase in PHASES:
        refs = store.versions(phase)
        click.echo(f"{phase:8s} {config.hub.repo_id(phase)}: "
                   f"{len(refs)} version{'s' if len(refs) != 1 else ''}")
        for ref in refs:
            lineage: dict[str, Any] = {}
            try:
                lineage = card_lineage(store.read_card(phase, ref.version))
            except (ValueError, OSError, HubError) as error:
                click.echo(f"  {ref.version}: card unreadable: {error}")
                continue
            parent = lineage.get("parent")
            source = f"{parent['repo_id']}@{parent['version']}" if parent else "-"
            rows = list(lineage.get("counts", {}).values())
            click.echo(f"  {ref.version}  rows={rows[-1] if rows else '?'}  parent={source}  "
                       f"created={lineage.get('created_at', '?')}")


@main.command()
@CONFIG_OPTION
@click.option("--dataset", default=None, metavar="REPO_OR_FOLDER@vN",
              help="The sft_final version to train on (default: config, else the latest, printed).")
@click.option("--resume", is_flag=True, help="Resume from the last checkpoint in output_dir.")
@click.option("--push", is_flag=True, help="Publish the checkpoint and its card to the hub store.")
def train(config_path: Path, dataset: str | None, resume: bool, push: bool) -> None:
    """Fine-tune the target model on sft_final with DeepSpeed ZeRO (README: launchers)."""
    from warriorcoder.training import train_from_config

    config = _load(config_path)
    result = train_from_config(config, dataset=dataset, resume=resume, push=push)
    click.echo(f"train: done: {result}")


@main.command()
@CONFIG_OPTION
@click.argument("target")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N HumanEval problems.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--out-dir", type=click.Path(path_type=Path), default=None,
              help="Where the results and report go (default: beside the journal).")
def evaluate(config_path: Path, target: str, limit: int | None, max_new_tokens: int,
             out_dir: Path | None) -> None:
    """HumanEval pass@1 (instruction mode, as EvalPlus) of TARGET: a checkpoint folder, a TGI
    URL, or an expert of the config."""
    from warriorcoder.evaluation import evaluate as run_evaluation

    config = _load(config_path)
    try:
        report = run_evaluation(config, target, limit=limit, max_new_tokens=max_new_tokens,
                                out_dir=out_dir)
    except (ValueError, *_user_errors()) as error:
        raise _fail(error) from None
    click.echo(report.summary())
    click.echo(f"report: {report.report_path}")


if __name__ == "__main__":  # pragma: no cover
    main()
