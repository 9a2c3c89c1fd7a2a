"""The installed wheel holds only product code: test servers and simulators stay in tests/."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = out.glob("warriorcoder-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_has_no_test_servers_or_simulators(wheel_names: list[str]) -> None:
    top = {name.split("/")[0] for name in wheel_names}
    assert top == {"warriorcoder", next(t for t in top if t.endswith(".dist-info"))}
    leaked = [n for n in wheel_names
              if "testing/" in n or "tests/" in n or n.endswith(("_server.py", "sim_battles.py"))]
    assert leaked == []


def test_the_wheel_ships_what_the_commands_read(wheel_names: list[str]) -> None:
    for needed in ("warriorcoder/templates/arena.yaml",
                   "warriorcoder/dataset_cards/templates/dataset_card.md",
                   "warriorcoder/training/deepspeed/zero3.json"):
        assert needed in wheel_names
