"""The trusted side of the sandbox's report channel: messages and values, validated.

The child (`_child.py`) writes one line `NONCE <json>` per message on the pipe that was its
standard output. `read_messages` accepts the bytes only if every line carries this run's nonce
and parses as a JSON object; anything else means the untrusted code wrote on the channel, and
the whole run is void (`Tampered`). `decode` turns a transmitted value back into plain Python
objects (exact builtin types, numpy numbers), never running code the child chose.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUMPY_DTYPE = re.compile(r"[<>|=]?[biufc]\d{1,2}")


class Tampered(Exception):
    """The channel held something the sandbox's own code never writes."""


class NotPlainData(Exception):
    """A transmitted value that is not one `_child.encode` produces."""


def read_messages(data: bytes, nonce: str) -> list[dict[str, Any]]:
    """Every message of one run, in order. Raises `Tampered` on any foreign byte."""
    prefix = nonce.encode("ascii") + b" "
    messages = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        raise Tampered("the channel ends in the middle of a message")
    for number, line in enumerate(lines):
        if not line.startswith(prefix):
            raise Tampered(f"message {number} does not carry this run's nonce")
        try:
            message = json.loads(line[len(prefix):])
        except (ValueError, RecursionError):
            raise Tampered(f"message {number} is not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("k"), str):
            raise Tampered(f"message {number} is not a message")
        messages.append(message)
    return messages


def check_done(messages: list[dict[str, Any]]) -> bool:
    """Did the run end with its `done` message, counting every message exactly once?"""
    if not messages or messages[-1].get("k") != "done":
        return False
    count = messages[-1].get("n")
    return type(count) is int and count == len(messages)


def decode(value: Any) -> Any:
    """The object a transmitted value stands for. Raises `NotPlainData` for any other shape."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is not dict or len(value) not in (1, 2):
        raise NotPlainData(f"unexpected {kind.__name__}")
    try:
        if len(value) == 2:
            return _numpy(value)
        ((tag, body),) = value.items()
        if tag in ("l", "t", "s", "fs") and type(body) is list:
            items = [decode(item) for item in body]
            return {"l": list, "t": tuple, "s": set, "fs": frozenset}[tag](items)
        if tag == "d" and type(body) is list:
            pairs = []
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise NotPlainData("a dict entry is not a pair")
                pairs.append((decode(pair[0]), decode(pair[1])))
            return dict(pairs)
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "c" and type(body) is list and len(body) == 2:
            real, imag = body
            if type(real) is float and type(imag) is float:
                return complex(real, imag)
    except (TypeError, ValueError, RecursionError) as error:  # unhashable keys, bad hex, depth
        raise NotPlainData(str(error)[:200]) from None
    raise NotPlainData(f"unknown tag {sorted(value)}")


def _numpy(value: dict[str, Any]) -> Any:
    import numpy as np

    dtype = value.get("np", value.get("nd"))
    if type(dtype) is not str or not _NUMPY_DTYPE.fullmatch(dtype) or "v" not in value:
        raise NotPlainData("not a numpy value")
    inner = decode(value["v"])
    if "np" in value:
        return np.dtype(dtype).type(inner)
    return np.array(inner, dtype=dtype)
