"""The versioned artifacts: one repo each, the command that writes it, and its repo type.

`status` lists them in this order and `--from-card` checks a card against the command that
wrote it; the hub store takes a repo's type from here. The six phase datasets are declared
again beside their builders (`Phase.dataset`); a test checks that both lists agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from warriorcoder.errors import HubError

MODEL = "model"
"""The repo short name of checkpoints: `<namespace>/<prefix>-model`."""
EVALS = "evals"
"""The repo short name of evaluation samples: `<namespace>/<prefix>-evals`."""


@dataclass(frozen=True)
class Artifact:
    """One versioned repo `<namespace>/<prefix>-<name>`."""

    name: str
    command: str
    """The `warriorcoder` command that writes it; its cards record it as `phase`."""
    repo_type: Literal["dataset", "model"] = "dataset"
    rebuildable: bool = True
    """Whether `<command> --from-card` rebuilds a version from the config its card recorded."""


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("mined_raw", "mine"),
    Artifact("filtered", "filter"),
    Artifact("compressed", "compress"),
    Artifact("battles", "battle"),
    Artifact("votes", "judge"),
    Artifact("sft_final", "select"),
    Artifact(MODEL, "train", repo_type="model", rebuildable=False),
    Artifact(EVALS, "evaluate", rebuildable=False),
)
"""Every artifact, in pipeline order."""

_BY_NAME = {artifact.name: artifact for artifact in ARTIFACTS}
_BY_COMMAND = {artifact.command: artifact for artifact in ARTIFACTS}


def get_artifact(name: str) -> Artifact:
    """The artifact of repo short name `name`; another name is a dataset repo (tests and
    users may publish their own)."""
    return _BY_NAME.get(name) or Artifact(name, command=name)


def artifact_of_command(command: str) -> Artifact:
    """The artifact a command writes; raises `HubError` for a command that writes none."""
    try:
        return _BY_COMMAND[command]
    except KeyError:
        known = ", ".join(_BY_COMMAND)
        raise HubError(f"`{command}` writes no versioned artifact; these do: {known}") from None
