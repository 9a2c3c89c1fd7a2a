"""The Python of a model's reply, as the evaluation extracts it, and its public interface.

`extract_code` takes the reply's fenced blocks (```python / ```py / ```python3 blocks when
there are any, else untagged ones; the whole reply when it has no fence), joins them and
sanitises the result with EvalPlus's sanitiser (`sanitize.py`), which keeps imports and the
top-level definitions (reached from `entry_point` when one is given). Top-level calls, prints
and example usage are dropped, so only definitions reach the tests.
"""

from __future__ import annotations

import ast
import re

from warriorcoder.sandbox.sanitize import sanitize

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3"}


def _blocks(text: str) -> list[str]:
    found = _FENCE.findall(text)
    tagged = [body for tag, body in found if tag.lower() in _PYTHON_TAGS and body.strip()]
    if tagged:
        return tagged
    untagged = [body for tag, body in found if not tag and body.strip()]
    if untagged:
        return untagged
    return [] if found else [text]


def extract_code(response_text: str, entry_point: str | None = None) -> str | None:
    """The sanitised Python of a reply, or None when nothing of it parses as Python code."""
    blocks = _blocks(response_text or "")
    if not blocks:
        return None
    code = sanitize("\n\n".join(block.rstrip() for block in blocks), entry_point)
    if not code.strip():
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    # prose that happens to parse (a lone name, a constant) is not code
    if all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Name | ast.Constant)
           for node in tree.body):
        return None
    return code


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"


def public_interface(code: str) -> list[str]:
    """Signature lines of the top-level functions and classes of `code` (methods of a class
    indented under it, private `_names` left out); [] when it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return []
    lines: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                lines.append(_signature(node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            lines.append(f"class {node.name}({bases})" if bases else f"class {node.name}")
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    not item.name.startswith("_") or item.name == "__init__"
                ):
                    lines.append("    " + _signature(item))
    return lines
