"""The whole arena config (`ArenaConfig`) and reading it from YAML, with line numbers in its
errors."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, ValidationError, model_validator

from warriorcoder.config.sections import (
    BattleConfig,
    CompressConfig,
    ExpertConfig,
    FilterConfig,
    GenerationConfig,
    HubConfig,
    JudgeConfig,
    MineConfig,
    SelectConfig,
    TrainConfig,
    _Section,
)
from warriorcoder.errors import ConfigError, UnknownNameError


class ArenaConfig(_Section):
    """The whole arena: hub target, experts and each phase's parameters (paper defaults)."""

    hub: HubConfig = Field(default_factory=HubConfig)
    experts: list[ExpertConfig]
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    mine: MineConfig = Field(default_factory=MineConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    battle: BattleConfig = Field(default_factory=BattleConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    _base_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _experts(self) -> ArenaConfig:
        names = [expert.name for expert in self.experts]
        if len(names) < 2:
            raise ValueError("an arena needs at least 2 experts (3 for a battle to have a judge)")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"expert names must be unique; repeated: {duplicates}")
        for section in ("filter", "judge"):
            for judge in getattr(self, section).judges or []:
                if judge not in names:
                    raise ValueError(
                        f"{section}.judges: unknown expert {judge!r}; known experts: {names}"
                    )
        return self

    def expert(self, name: str) -> ExpertConfig:
        for expert in self.experts:
            if expert.name == name:
                return expert
        raise UnknownNameError(f"unknown expert {name!r}; known experts: {self.expert_names}")

    @property
    def expert_names(self) -> list[str]:
        return [expert.name for expert in self.experts]

    @property
    def base_dir(self) -> Path | None:
        """The folder relative paths in the config were taken from (its file's folder)."""
        return self._base_dir

    def to_yaml_dict(self) -> dict[str, Any]:
        """The config as plain data (paths as strings, absolute where resolved)."""
        return self.model_dump(mode="json")

    def to_card_dict(self) -> dict[str, Any]:
        """The config as a public card records it: paths relative to the config's folder, and
        the experts' URLs left out unless `hub.record_endpoints` (they name internal hosts)."""
        data = self.model_dump(mode="json")
        base = self._base_dir

        def portable(value: Any) -> Any:
            if isinstance(value, str) and base is not None and Path(value).is_absolute():
                return Path(os.path.relpath(value, base)).as_posix()
            return value

        for section, key in _PATH_FIELDS:
            if data[section].get(key) is not None:
                data[section][key] = portable(data[section][key])
        for expert in data["experts"]:
            for key in ("local", "tokenizer"):
                if expert.get(key):
                    expert[key] = portable(expert[key])
            if not self.hub.record_endpoints and expert.get("urls"):
                expert["urls"] = []
        return data


_PATH_FIELDS = (("hub", "root"), ("generation", "journal"), ("train", "output_dir"),
                ("filter", "mbpp_path"), ("train", "base_model"))
"""(section, field) of the config's paths, recorded relative to the config's folder."""


def _line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in a composed YAML document to its 1-based line number."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines.update(_line_index(value_node, child))
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_index(item, (*path, index)))
    return lines


def _describe(
    errors: Iterable[dict[str, Any]], lines: dict[tuple[Any, ...], int], source: str
) -> str:
    messages = []
    for error in errors:
        loc = tuple(error["loc"])
        field = ".".join(str(part) for part in loc) or "<top level>"
        line = None
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        where = f"{source}, line {line}" if line else source
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (a typo?)"
        elif error["type"] == "missing":
            message = "field required"
        messages.append(f"  {field} ({where}): {message}")
    return "invalid arena config:\n" + "\n".join(messages)


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> ArenaConfig:
    """Validate YAML text; relative paths in it are taken from `base_dir`."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the arena config must be a YAML mapping")
    lines = _line_index(node) if node is not None else {}
    try:
        config = ArenaConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error.errors(), lines, source)) from None
    if base_dir is not None:
        _resolve_paths(config, base_dir)
    return config


def validate_config_data(data: dict[str, Any], source: str,
                         base_dir: Path | None = None) -> ArenaConfig:
    """Validate a config held as data (e.g. recorded in a card); raises `ConfigError`."""
    try:
        config = ArenaConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error.errors(), {}, source)) from None
    if base_dir is not None:
        _resolve_paths(config, base_dir)
    return config


def _resolve_paths(config: ArenaConfig, base_dir: Path) -> None:
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else (base_dir / path).resolve()

    config._base_dir = base_dir
    config.hub.root = resolve(config.hub.root)
    config.generation.journal = resolve(config.generation.journal)
    config.train.output_dir = resolve(config.train.output_dir)
    if config.filter.mbpp_path is not None:
        config.filter.mbpp_path = resolve(config.filter.mbpp_path)


def load_config(path: str | Path) -> ArenaConfig:
    """Read and validate an arena YAML file; relative paths are taken from its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"arena config {path} does not exist; `warriorcoder init` writes one")
    return parse_config(path.read_text(), source=str(path), base_dir=path.parent.resolve())
