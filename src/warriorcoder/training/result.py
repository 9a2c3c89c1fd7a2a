"""What one training run produced; written next to the checkpoint as `training_result.json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from warriorcoder.training.dataset import DatasetSource

RESULT_FILE = "training_result.json"


@dataclass
class TrainResult:
    """The final checkpoint, the exact dataset version it learned from, and how training went."""

    checkpoint_dir: Path
    """The saved model + tokenizer (with chat template) + model card."""
    base_model: str
    dataset: DatasetSource
    rows_in: int
    rows_used: int
    rows_dropped_too_long: int
    global_step: int
    final_loss: float | None
    """The last logged training loss."""
    train_loss: float | None
    """The mean training loss over the run, as the Trainer reports it."""
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    published: str | None = None
    """Where `--push` published the checkpoint (`<repo>@<version>`), if it did."""
    fingerprint: str | None = None
    """What the checkpoint was trained from (see `sft.training_fingerprint`): a rerun with the
    same one reuses this checkpoint."""

    @classmethod
    def read(cls, folder: Path) -> TrainResult:
        """The result written next to a checkpoint (raises OSError/ValueError when absent)."""
        data = json.loads((folder / RESULT_FILE).read_text())
        data["checkpoint_dir"] = Path(folder)
        data["dataset"] = DatasetSource(**data["dataset"])
        data["loss_history"] = [tuple(point) for point in data.get("loss_history", [])]
        return cls(**data)

    def __str__(self) -> str:
        loss = "n/a" if self.final_loss is None else f"{self.final_loss:.4f}"
        where = f"; published {self.published}" if self.published else ""
        return (
            f"{self.checkpoint_dir} (trained on {self.dataset}, {self.rows_used} rows, "
            f"{self.global_step} steps, final loss {loss}{where})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checkpoint_dir"] = "."  # the folder this file is in: no local path is published
        data["dataset"] = self.dataset.to_dict()
        data["loss_history"] = [list(point) for point in self.loss_history]
        return data

    def write(self, folder: Path) -> Path:
        path = folder / RESULT_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path
