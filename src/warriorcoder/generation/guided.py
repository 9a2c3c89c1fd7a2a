"""Guided decoding per server: the field that carries a regex constraint, and regex -> GBNF.

The pipeline asks for constraints in TGI's shape, `SamplingParams.grammar = {"type": "regex",
"value": ...}` (judge.constrained_verdicts, filter.constrained_scores). Each server takes it in
its own field (checked against their documentation and source):

| `guided_decoding` | request field |
|---|---|
| `tgi` | `grammar` on `/generate`, `response_format` on `/v1/chat/completions` |
| `vllm` (>= 0.12) | `structured_outputs: {"regex": ...}` (`{"json": ...}` for JSON schemas) |
| `vllm-legacy` | `guided_regex` (`guided_json`), removed in vLLM 0.12 |
| `sglang` | `regex` (`json_schema` for JSON schemas) |
| `llama.cpp` | `grammar`, GBNF converted from the regex here (`json_schema` for JSON schemas) |
| `none` | refused at the start of the phase (`UnsupportedFeatureError`) |

`regex_to_gbnf` converts the regex subset the pipeline's constraints use (literals, escapes,
classes, `.`, groups, `|`, `* + ? {m} {m,} {m,n}`) and refuses the rest (anchors in the middle,
look-arounds, back-references) with `UnsupportedFeatureError`, so a constraint never silently
becomes a different one.
"""

from __future__ import annotations

import json
from typing import Any

from warriorcoder.config import ExpertConfig
from warriorcoder.errors import UnsupportedFeatureError

GUIDED_KINDS = ("tgi", "vllm", "vllm-legacy", "sglang", "llama.cpp", "none")


def guided_kind(expert: ExpertConfig) -> str:
    """The expert's `guided_decoding`, defaulting to `tgi` for TGI and `none` for OpenAI."""
    if expert.guided_decoding is not None:
        return expert.guided_decoding
    return "tgi" if expert.api == "tgi" else "none"


def check_grammar(expert: ExpertConfig, grammar: dict[str, Any] | None) -> None:
    """Raise `UnsupportedFeatureError` when the expert's server cannot take `grammar`."""
    if grammar is None:
        return
    guided_fields(expert, grammar, chat=True)


def guided_fields(expert: ExpertConfig, grammar: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    """The request fields that carry `grammar` to this expert's server (OpenAI routes)."""
    kind = guided_kind(expert)
    gtype, value = grammar.get("type"), grammar.get("value")
    if kind == "none":
        raise UnsupportedFeatureError(
            f"expert {expert.name!r}: a {gtype} constraint was asked (judge.constrained_verdicts "
            "or filter.constrained_scores) but the expert has no `guided_decoding`; set it to "
            "vllm, vllm-legacy, sglang, llama.cpp or tgi for its server, or turn the constraint "
            "off"
        )
    if gtype not in ("regex", "json", "json_schema"):
        raise UnsupportedFeatureError(f"expert {expert.name!r}: unknown grammar type {gtype!r}")
    if kind == "tgi":
        return {"response_format": grammar} if chat else {"grammar": grammar}
    if gtype == "regex":
        if kind == "vllm":
            return {"structured_outputs": {"regex": value}}
        if kind == "vllm-legacy":
            return {"guided_regex": value}
        if kind == "sglang":
            return {"regex": value}
        try:
            return {"grammar": regex_to_gbnf(str(value))}
        except UnsupportedFeatureError as error:
            raise UnsupportedFeatureError(f"expert {expert.name!r}: {error}") from None
    schema = value if isinstance(value, dict) else json.loads(str(value))
    if kind == "vllm":
        return {"structured_outputs": {"json": schema}}
    if kind == "vllm-legacy":
        return {"guided_json": schema}
    if kind == "sglang":
        return {"json_schema": json.dumps(schema)}
    return {"json_schema": schema}


# -- regex -> GBNF -------------------------------------------------------------------------------

_CLASS_ESCAPES = {
    "d": [("0", "9")],
    "w": [("0", "9"), ("A", "Z"), ("a", "z"), ("_", "_")],
    "s": [(c, c) for c in " \t\n\r\f\v"],
}
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}


def _char(c: str) -> str:
    """One character as GBNF writes it inside a literal or a class."""
    if c.isascii() and c.isalnum() or c in " _":
        return c
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02X}"
    if code < 0x10000:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _class(ranges: list[tuple[str, str]], negated: bool) -> str:
    body = "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in ranges)
    return f"[{'^' if negated else ''}{body}]"


class _Parser:
    """Recursive descent over a Python regex, writing GBNF expressions."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def fail(self, what: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(
            f"the regex constraint {self.p!r} uses {what} (at {self.i}), which cannot be "
            "converted to llama.cpp's GBNF; use a simpler regex or another guided_decoding"
        )

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def take(self) -> str:
        c = self.p[self.i]
        self.i += 1
        return c

    def alternation(self) -> str:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.take()
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else "(" + " | ".join(branches) + ")"

    def sequence(self) -> str:
        parts: list[str] = []
        literal = ""
        while (c := self.peek()) is not None and c not in "|)":
            atom, is_literal = self.atom()
            if atom is None:
                continue
            quantifier = self.quantifier()
            if is_literal and not quantifier:
                literal += atom
                continue
            if literal:
                parts.append(f'"{literal}"')
                literal = ""
            parts.append((f'"{atom}"' if is_literal else atom) + quantifier)
        if literal:
            parts.append(f'"{literal}"')
        return " ".join(parts) if parts else '""'

    def atom(self) -> tuple[str | None, bool]:
        """(GBNF text, whether it is one literal character)."""
        c = self.take()
        if c == "(":
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise self.fail("a group extension (?...)")
            inner = self.alternation()
            if self.peek() != ")":
                raise self.fail("an unclosed group")
            self.take()
            return f"({inner})", False
        if c == "[":
            return self.char_class(), False
        if c == ".":
            return "[^\\x0A]", False
        if c == "^":
            if self.i != 1:
                raise self.fail("an anchor inside the pattern")
            return None, False
        if c == "$":
            if self.i != len(self.p):
                raise self.fail("an anchor inside the pattern")
            return None, False
        if c in "*+?{":
            raise self.fail(f"a quantifier {c!r} with nothing before it")
        if c == "\\":
            return self.escape()
        return _char(c), True

    def escape(self) -> tuple[str, bool]:
        if self.peek() is None:
            raise self.fail("a trailing backslash")
        c = self.take()
        if c.lower() in _CLASS_ESCAPES:
            return _class(_CLASS_ESCAPES[c.lower()], negated=c.isupper()), False
        if c in _CHAR_ESCAPES:
            return _char(_CHAR_ESCAPES[c]), True
        if c.isalnum():
            raise self.fail(f"the escape \\{c}")
        return _char(c), True

    def char_class(self) -> str:
        negated = self.peek() == "^"
        if negated:
            self.take()
        ranges: list[tuple[str, str]] = []
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise self.fail("an unclosed character class")
            if c == "]" and not first:
                self.take()
                break
            first = False
            self.take()
            if c == "\\":
                e = self.take()
                if e in _CLASS_ESCAPES:
                    ranges += _CLASS_ESCAPES[e]
                    continue
                if e.lower() in _CLASS_ESCAPES:
                    raise self.fail(f"a negated class escape \\{e} inside [...]")
                c = _CHAR_ESCAPES.get(e, e)
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.take()
                end = self.take()
                if end == "\\":
                    end = _CHAR_ESCAPES.get(self.take(), self.p[self.i - 1])
                ranges.append((c, end))
            else:
                ranges.append((c, c))
        return _class(ranges, negated)

    def quantifier(self) -> str:
        c = self.peek()
        if c is None or c not in "*+?{":
            return ""
        if c == "{":
            end = self.p.find("}", self.i)
            body = self.p[self.i + 1 : end] if end > 0 else ""
            low, _, high = body.partition(",")
            if not low.isdigit() or (high and not high.isdigit()):
                raise self.fail("a malformed {m,n} quantifier")
            self.i = end + 1
            quantifier = "{" + body + "}"
        else:
            self.take()
            quantifier = c
        if self.peek() in ("?", "+"):  # lazy or possessive: same language
            self.take()
        return quantifier


def regex_to_gbnf(pattern: str) -> str:
    """A GBNF grammar (`root ::= ...`) whose language is the full matches of `pattern`.

    Raises `UnsupportedFeatureError` for regex features outside the supported subset."""
    parser = _Parser(pattern)
    expression = parser.alternation()
    if parser.i != len(pattern):
        raise parser.fail("an unbalanced ')'")
    return f"root ::= {expression}\n"
