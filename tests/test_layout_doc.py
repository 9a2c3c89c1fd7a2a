"""The README's layout section and the import-linter layers name exactly the package's tree,
and its modules and functions stay short (issue 18)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "warriorcoder"


def _tree() -> set[str]:
    """Top-level packages (`name/`) and modules (`name.py`) of `src/warriorcoder`."""
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    return packages | modules


def _layout_entries() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    assert match, "README.md has no `## Layout` section followed by another section"
    return re.findall(r"^- `([A-Za-z_][\w]*(?:/|\.py))`: \S", match[1], flags=re.M)


def test_readme_layout_lists_every_package_and_module_once() -> None:
    entries = _layout_entries()
    assert len(entries) == len(set(entries)), f"listed twice: {sorted(entries)}"
    tree = _tree()
    missing = sorted(tree - set(entries))
    assert not missing, f"README's Layout section lacks {missing}: add one line each"
    stale = sorted(e for e in set(entries) - tree if not (PACKAGE / e).is_dir())
    assert not stale, f"README's Layout section names {stale}, which src/warriorcoder lacks"


def test_import_layers_name_every_package_and_module() -> None:
    """A new top-level module must take its place in the layers, and scoring may not import it."""
    linter = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "importlinter"]
    contracts = {c["id"]: c for c in linter["contracts"]}
    names = {f"warriorcoder.{e.removesuffix('/').removesuffix('.py')}" for e in _tree()}
    layered = {m.strip() for layer in contracts["layers"]["layers"] for m in layer.split("|")}
    assert layered == names
    forbidden = set(contracts["scoring-is-pure"]["forbidden_modules"])
    assert forbidden == names - {"warriorcoder.scoring"}
    assert contracts["no-cycles"]["type"] == "acyclic_siblings"
    assert contracts["no-cycles"]["ancestors"] == ["warriorcoder"]


MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
REASON = "# long:"


def test_modules_and_functions_stay_short_or_say_why() -> None:
    """Over the limits, a module says why in a `# long: <reason>` line near its top, and a
    function in one just above or on its `def` line."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        name = path.relative_to(PACKAGE)
        if len(lines) > MAX_MODULE_LINES and not any(REASON in line for line in lines[:40]):
            too_long.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            length = (node.end_lineno or node.lineno) - start + 1
            around = lines[max(0, start - 3):node.lineno]
            if length > MAX_FUNCTION_LINES and not any(REASON in line for line in around):
                too_long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, f"split these, or say why in a `{REASON} ...` comment: {too_long}"
