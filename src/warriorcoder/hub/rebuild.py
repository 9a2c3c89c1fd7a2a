"""`--from-card`: the config and parent version a card recorded, to rebuild that version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from warriorcoder.config import (
    EXPERT_RUNTIME_FIELDS,
    ArenaConfig,
    HubConfig,
    load_config,
    validate_config_data,
)
from warriorcoder.errors import ConfigError, PhaseError, SpecError
from warriorcoder.hub.artifacts import artifact_of_command
from warriorcoder.hub.open import open_store
from warriorcoder.hub.store import parse_spec
from warriorcoder.lineage import card_lineage


def config_from_card(spec: str, command: str, config_path: Path
                     ) -> tuple[ArenaConfig, str | None]:
    """The config and parent version the card of `spec` recorded, rebuilt into the hub of
    `config_path` (when it exists) for `command`, which must be the command that wrote it.

    Cards leave the experts' URLs out, so experts are reached as `config_path` says (by name);
    without that file the recorded config must be complete. Raises `SpecError`, `PhaseError`,
    `ConfigError` and the hub errors."""
    artifact = artifact_of_command(command)
    repo, version = parse_spec(spec)
    current = load_config(config_path) if config_path.exists() else None
    hub = current.hub if current is not None else HubConfig()
    if repo != hub.repo_id(artifact.name):
        raise SpecError(
            f"--from-card {spec}: `{command}` writes {hub.repo_id(artifact.name)} in the hub of "
            f"{config_path}, not {repo}"
        )
    lineage = card_lineage(open_store(hub).read_card(artifact.name, version))
    if lineage.get("phase") != command or "config" not in lineage:
        raise PhaseError(f"{spec} was written by `{lineage.get('phase')}`, not `{command}`")
    recorded = dict(lineage["config"])
    base_dir = current.base_dir if current is not None else Path.cwd()
    if current is not None:
        recorded["hub"] = current.hub.model_dump(mode="json")
        recorded["generation"] = current.generation.model_dump(mode="json")
        recorded["experts"] = _reachable_experts(recorded["experts"], current, spec, config_path)
    config = validate_config_data(recorded, f"the config recorded in {spec}", base_dir)
    parent = lineage.get("parent")
    return config, parent["version"] if parent else None


def _reachable_experts(recorded: list[dict[str, Any]], current: ArenaConfig, spec: str,
                       config_path: Path) -> list[dict[str, Any]]:
    """The recorded experts with the runtime fields (URLs, tokens) of `current`."""
    reach = {e.name: e for e in current.experts}
    experts = []
    for entry in recorded:
        here = reach.get(entry["name"])
        if here is None:
            raise ConfigError(
                f"--from-card {spec}: expert {entry['name']!r} of the recorded config is not "
                f"in {config_path}; add it there (with its urls) to rebuild"
            )
        runtime = {k: v for k, v in here.model_dump(mode="json").items()
                   if k in EXPERT_RUNTIME_FIELDS}
        experts.append({**entry, **runtime})
    return experts
