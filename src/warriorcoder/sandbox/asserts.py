"""Asserts rewritten so that the trusted parent, not the sandboxed code, decides them.

`rewrite(test_source)` replaces every `assert` of a (model-written, untrusted) test with a call
`__wc_check__(ID, lambda: (operands...))`: the sandbox evaluates only the operands and sends
their values as plain data; the parent applies the comparison (`Check.decide`).

- `assert X <op> LITERAL` (or `LITERAL <op> X`, chains too; LITERAL: what `ast.literal_eval`
  accepts): the literal never enters the sandbox (a *strong* check: the answer cannot see or
  change the expected value).
- Any other comparison (`assert f(x) == g(y)`): every operand is evaluated in the sandbox and
  compared in the parent (*weak*: the expected side is computed where the answer's code runs).
- Anything else (`assert g(x)`, `assert not g(x)`): the value is sent and its truthiness taken in
  the parent (*weak* in the same sense).

Values must be plain data (`channel.decode`), so an object whose `__eq__` or `__bool__` always
says yes never passes. Operands of a chained comparison are all evaluated (Python would stop at
the first false link); the verdict is the same.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHECK_NAME = "__wc_check__"
_REPR = 80
_OPS: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "Eq": ("==", operator.eq),
    "NotEq": ("!=", operator.ne),
    "Lt": ("<", operator.lt),
    "LtE": ("<=", operator.le),
    "Gt": (">", operator.gt),
    "GtE": (">=", operator.ge),
    "In": ("in", lambda a, b: a in b),
    "NotIn": ("not in", lambda a, b: a not in b),
    "Is": ("is", operator.is_),
    "IsNot": ("is not", operator.is_not),
}
_NOT_LITERAL = object()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR else text[: _REPR - 3] + "..."


@dataclass(frozen=True)
class Check:
    """One assert: how the parent decides it from the values the sandbox sent."""

    ops: tuple[str, ...]
    """Comparison operators (names of `ast.cmpop` classes); empty for a truth check."""
    operands: tuple[tuple[str, Any], ...]
    """("lit", value) kept here, or ("val", k): the k-th value sent by the sandbox."""
    negate: bool = False
    source: str = ""

    @property
    def weak(self) -> bool:
        """Whether the expected side was computed inside the sandbox."""
        return sum(kind == "val" for kind, _ in self.operands) != 1 or not self.ops

    @property
    def sent(self) -> int:
        return sum(kind == "val" for kind, _ in self.operands)

    def decide(self, values: list[Any]) -> tuple[bool, str]:
        """(held, why not). Raises TypeError/ValueError where Python's own assert would raise."""
        resolved = [values[ref] if kind == "val" else ref for kind, ref in self.operands]
        if not self.ops:
            held = bool(resolved[0]) != self.negate
            why = f"assert {self.source}: the value was {_short(resolved[0])}"
            return held, "" if held else why
        for name, left, right in zip(self.ops, resolved, resolved[1:], strict=False):
            symbol, function = _OPS[name]
            if not bool(function(left, right)):
                shown = f"{_short(left)} {symbol} {_short(right)}"
                return False, f"assert {self.source}: {shown} is false"
        return True, ""


@dataclass(frozen=True)
class Rewritten:
    """A test as the sandbox runs it, and what the parent needs to decide its asserts."""

    source: str
    """The test with each assert replaced by a `__wc_check__` call (no literal expected side)."""
    checks: dict[int, Check]
    required: frozenset[int]
    """Asserts that run unconditionally: a run that reports none of them did not finish."""


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant | ast.List | ast.Tuple | ast.Set | ast.Dict | ast.UnaryOp
                  | ast.BinOp | ast.Call):
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return _NOT_LITERAL
    return _NOT_LITERAL


class _Rewriter(ast.NodeTransformer):
    def __init__(self) -> None:
        self.checks: dict[int, Check] = {}

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:  # noqa: N802 - ast API
        test, negate, ops = node.test, False, ()
        source = ast.unparse(test)[:200]
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test, negate = test.operand, True
        if isinstance(test, ast.Compare) and not negate:
            parts = [test.left, *test.comparators]
            ops = tuple(type(op).__name__ for op in test.ops)
        else:
            parts = [test]
        sent: list[ast.expr] = []
        operands: list[tuple[str, Any]] = []
        for part in parts:
            value = _literal(part) if ops else _NOT_LITERAL
            if value is _NOT_LITERAL:
                operands.append(("val", len(sent)))
                sent.append(part)
            else:
                operands.append(("lit", value))
        check_id = len(self.checks)
        self.checks[check_id] = Check(ops, tuple(operands), negate, source)
        thunk = ast.Lambda(
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[],
                               defaults=[]),
            body=ast.Tuple(elts=sent, ctx=ast.Load()),
        )
        call = ast.Call(ast.Name(CHECK_NAME, ast.Load()), [ast.Constant(check_id), thunk], [])
        return ast.copy_location(ast.Expr(call), node)


def _required(tree: ast.Module, ids: dict[int, ast.stmt]) -> frozenset[int]:
    """Asserts straight in the module body or in a top-level function the module calls."""
    called = {
        stmt.value.func.id
        for stmt in tree.body
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
    }
    direct: list[ast.stmt] = list(tree.body)
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name in called:
            direct.extend(stmt.body)
    return frozenset(check_id for check_id, node in ids.items() if any(node is s for s in direct))


def rewrite(test_source: str) -> Rewritten:
    """The test ready for the sandbox. Raises SyntaxError when it does not parse."""
    tree = ast.parse(test_source)
    rewriter = _Rewriter()
    new_tree = rewriter.visit(tree)
    replaced = {
        node.value.args[0].value: node  # type: ignore[attr-defined]
        for node in ast.walk(new_tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name) and node.value.func.id == CHECK_NAME
    }
    ast.fix_missing_locations(new_tree)
    return Rewritten(ast.unparse(new_tree), rewriter.checks, _required(new_tree, replaced))
