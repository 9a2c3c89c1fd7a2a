"""The arena config: one YAML file describing the hub target, the experts and every phase.

`load_config(path)` validates the whole file and raises `ConfigError` naming the field and,
where the YAML parser knows it, the line in the file. The sections are in `sections.py`, the
whole config and its YAML reading in `arena.py`; every name is importable from here.
"""

from warriorcoder.config.arena import (
    ArenaConfig,
    load_config,
    parse_config,
    validate_config_data,
)
from warriorcoder.config.sections import (
    EXPERT_RUNTIME_FIELDS,
    MINING_SYSTEM_PROMPT,
    BattleConfig,
    CompressConfig,
    ExecutionConfig,
    ExpertConfig,
    FilterConfig,
    GenerationConfig,
    HubConfig,
    JudgeConfig,
    MineConfig,
    MiningSurvival,
    SelectConfig,
    TrainConfig,
)
from warriorcoder.errors import ConfigError

__all__ = [
    "EXPERT_RUNTIME_FIELDS",
    "MINING_SYSTEM_PROMPT",
    "ArenaConfig",
    "BattleConfig",
    "CompressConfig",
    "ConfigError",
    "ExecutionConfig",
    "ExpertConfig",
    "FilterConfig",
    "GenerationConfig",
    "HubConfig",
    "JudgeConfig",
    "MineConfig",
    "MiningSurvival",
    "SelectConfig",
    "TrainConfig",
    "load_config",
    "parse_config",
    "validate_config_data",
]
