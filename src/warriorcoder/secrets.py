"""Secrets from the environment: the one place a token or header variable is read.

A config names the variable (`token_env`, `headers_env`, `hub.token_env`), never the value;
the value is read here at run time and is never stored, logged or put in a card.
"""

from __future__ import annotations

import json
import os

from warriorcoder.errors import MissingSecretError


def read_secret(env_name: str, what: str, *, required: bool = True) -> str | None:
    """The value of the environment variable `env_name`, for `what` (e.g. "expert 'qwen':
    token_env").

    Raises `MissingSecretError` (naming `what` and the variable) when it is unset or empty and
    `required`; returns None then otherwise."""
    value = os.environ.get(env_name)
    if value:
        return value
    if not required:
        return None
    raise MissingSecretError(
        f"{what} names the environment variable {env_name}, which is not set; export it, or "
        "remove the setting"
    )


def read_json_headers(env_name: str, what: str) -> dict[str, str]:
    """Extra HTTP headers held as a JSON object of strings in `env_name`.

    Raises `MissingSecretError` when the variable is unset or does not hold such an object."""
    raw = read_secret(env_name, what)
    try:
        headers = json.loads(raw or "")
    except json.JSONDecodeError:
        headers = None
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise MissingSecretError(
            f"{what}: {env_name} must hold a JSON object of string headers, e.g. "
            '\'{"X-Org": "abc"}\''
        )
    return headers
