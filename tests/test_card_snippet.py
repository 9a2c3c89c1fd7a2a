"""A local card's how-to-load snippet, copied as it is, works where the user is told to run it.

The demo's layout: the config in `examples/`, the hub `../hub` of it, the user in the project
root. The snippet must load the version from there, and the card must hold no absolute path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from click.testing import CliRunner

from warriorcoder import cli
from warriorcoder.builders import REGISTRY
from warriorcoder.builders.base import PhaseInput, PhaseOutput
from warriorcoder.dataset_cards import CardContent

DEMO_STYLE = """\
hub: {backend: local, root: ../hub, namespace: local, prefix: warriorcoder}
experts:
  - {name: a, model_id: org/a, urls: ["http://127.0.0.1:9"]}
  - {name: b, model_id: org/b, urls: ["http://127.0.0.1:9"]}
"""


def _mine(phase_input: PhaseInput) -> PhaseOutput:
    rows = datasets.Dataset.from_dict({"id": ["0", "1"], "expert": ["a", "b"],
                                       "instruction": ["write a sort", "reverse a list"]})
    return PhaseOutput(rows, CardContent(counts=[("mined", 2)]))


def test_the_demo_cards_snippet_loads_from_the_project_root(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    project = tmp_path / "project"
    (project / "examples").mkdir(parents=True)
    (project / "examples" / "embedded.yaml").write_text(DEMO_STYLE)
    monkeypatch.setattr(REGISTRY["mine"], "build", _mine)
    monkeypatch.setattr(REGISTRY["mine"], "uses_experts", False)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(cli.main, ["mine", "-c", "examples/embedded.yaml"])
    assert result.exit_code == 0, result.output

    card = (project / "hub/local/warriorcoder-mined_raw/v1/README.md").read_text()
    assert str(tmp_path) not in card, "a card holds no absolute path"
    snippet = re.search(r"```python\n(.*?)```", card, re.S)[1]
    assert "run this from the folder that holds `hub/`" in snippet
    check = snippet + "assert ds['instruction'] == ['write a sort', 'reverse a list']\n"
    ran = subprocess.run([sys.executable, "-c", check], cwd=project, capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
