"""Tests for a battle's answers, written by an uninvolved expert: the prompt and its parsing.

The tester sees the instruction and the *public interface* of one answer (the signature lines
of the functions and classes its code defines, never their bodies: `sandbox.public_interface`),
and is asked for assert statements; its reply is prefilled with the start of the first one
(`TEST_REPLY_START`). One prompt per (tester, answer interface): two answers that define the same
interface get the same prompt, so the same tests (the journal sends it once), and the order in
which a battle shows its answers plays no part.

Parsing is strict and never guesses: the tests are the top-level `assert` statements of the
reply's code (its fenced blocks, else the reply itself; line by line when the block does not
parse as a whole) that call at least one name of the interface. Definitions the tester wrote
(a reply that solves the task first) are left out, so they can never stand in for the answer
under test; imports are kept as each test's preamble. A reply with no such assert is invalid
(recorded, retried by the caller, never filled in).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

TEST_WRITING_PROMPT = (
    "You are an impartial software tester. Below is a programming task and the interface of a "
    "solution to it (its function and class signatures; the code itself is hidden). Write "
    "{count} independent Python assert statements that check whether a solution does what the "
    "task asks: call the interface with concrete inputs, including edge cases the task "
    "mentions, and compare with the exact result the task requires. Work each expected result "
    "out from the task, not from guesses about the hidden code. Do not write the solution. "
    "Reply with one ```python block holding only the assert statements, one per line.\n"
    "\n"
    "[[Task]]\n"
    "{instruction}\n"
    "[[Interface]]\n"
    "{interface}\n"
    "[[Tests]]"
)
"""The test-writing prompt, with `{count}`, `{instruction}` and `{interface}` placeholders."""

TEST_REPLY_START = "```python\nassert {name}("
"""How every test-writing reply begins: the tester's chat template is rendered around the prompt
and this start of its reply is prefilled, with `{name}` the interface's first name. Small
testers asked in a plain chat write the solution first and run out of tokens before any assert
(Qwen2.5-Coder-0.5B on HumanEval: 44-53% of its test replies held no usable assert); begun this
way, the reply is the tests."""
TEST_REPLY_END = "\n```"
"""A stop string: the tests' block is closed."""


def render_reply_start(names: list[str] | tuple[str, ...]) -> str:
    """The prefilled start of a test-writing reply for an interface defining `names`."""
    if not names:
        return TEST_REPLY_START.split("{name}")[0]
    return TEST_REPLY_START.replace("{name}", names[0])

_PLACEHOLDER = re.compile(r"\{(count|instruction|interface)\}")
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
MAX_TEST_CHARS = 2000
"""A single assert longer than this is not a test but a program; it is left out."""


def render_test_prompt(instruction: str, interface: str, count: int) -> str:
    """The prompt for one (instruction, interface); values are inserted verbatim."""
    values = {"count": str(count), "instruction": instruction, "interface": interface}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], TEST_WRITING_PROMPT)


_DEFINED = re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)|^class\s+([A-Za-z_]\w*)")


def interface_names(interface: list[str] | tuple[str, ...]) -> list[str]:
    """The top-level names an interface (signature lines, methods indented) defines."""
    names = []
    for line in interface:
        match = _DEFINED.match(line)
        if match:
            names.append(match.group(1) or match.group(2))
    return names


@dataclass(frozen=True)
class ParsedTests:
    """The tests of one reply: each a self-contained snippet (imports, then one assert)."""

    tests: tuple[str, ...]
    dropped: int
    """Asserts left out: calling no interface name, too long, or beyond the count asked."""


def _blocks(reply: str) -> list[str]:
    blocks = [b for b in _FENCE.findall(reply) if b.strip()]
    return blocks or [reply]


def _statements(block: str) -> list[ast.stmt]:
    """Top-level statements of a block; line by line when the block does not parse."""
    try:
        return list(ast.parse(block).body)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        pass
    statements: list[ast.stmt] = []
    for line in block.splitlines():
        stripped = line.strip()
        if not stripped.startswith(("assert ", "assert(", "import ", "from ")):
            continue
        try:
            statements += ast.parse(stripped).body
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
    return statements


def _calls_any(node: ast.AST, names: frozenset[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def parse_tests(reply: str, names: list[str] | tuple[str, ...], count: int
                ) -> ParsedTests | None:
    """The asserts of `reply` that use an interface name (at most `count`, in reply order,
    duplicates once), or None when there is none (an invalid reply)."""
    wanted = frozenset(names)
    imports: list[str] = []
    tests: list[str] = []
    dropped = 0
    for block in _blocks(reply):
        for statement in _statements(block):
            if isinstance(statement, ast.Import | ast.ImportFrom):
                text = ast.unparse(statement)
                if text not in imports:
                    imports.append(text)
                continue
            if not isinstance(statement, ast.Assert):
                continue
            text = ast.unparse(statement)
            if not _calls_any(statement.test, wanted) or len(text) > MAX_TEST_CHARS:
                dropped += 1
            elif text not in tests:
                tests.append(text)
    if not tests:
        return None
    kept = tests[:count]
    dropped += len(tests) - len(kept)
    preamble = "".join(f"{line}\n" for line in imports)
    return ParsedTests(tuple(preamble + test for test in kept), dropped)
