"""SFT of the target model on a pinned `sft_final` version with DeepSpeed ZeRO.

`train_from_config` is what `warriorcoder train` calls; launchers run `warriorcoder.training.sft`.
Names are imported lazily so that importing this package does not load torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warriorcoder.training.result import TrainResult
    from warriorcoder.training.sft import train_from_config

__all__ = ["TrainResult", "train_from_config"]

_LOCATIONS = {
    "TrainResult": "warriorcoder.training.result",
    "train_from_config": "warriorcoder.training.sft",
}


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        return getattr(import_module(_LOCATIONS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
