"""The one interface between `ExpertPool` and the ways an expert is served.

A backend is one expert: a TGI server (`tgi.TGIBackend`), an OpenAI-compatible server
(`openai_compat.OpenAIBackend`) or a model run in-process (`local.LocalBackend`). The pool asks it
`info` (identity and limits, which key the journal), `tokenizer` (for the mining prefix),
`check` (before anything is sent: can it serve these requests?) and `run` (send the calls the
journal has no result for, reporting each result to a `Sink` as it arrives). This module is
the interface only: `pool.backend_for` picks the backend from the expert's config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from warriorcoder.generation.types import (
    CompletionRequest,
    ExpertInfo,
    GenerationResult,
    Request,
)

if TYPE_CHECKING:
    import aiohttp

    from warriorcoder.config import ExpertConfig


@dataclass
class Call:
    """One distinct call of a run: its journal key and the positions of the requests it answers."""

    request: Request
    key: str
    canonical: str
    indexes: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "completion" if isinstance(self.request, CompletionRequest) else "chat"


class Sink(Protocol):
    """Where a backend reports progress: a call is sent, a call is finished (for good)."""

    def sent(self) -> None: ...

    def finished(
        self, call: Call, result: GenerationResult, attempts: int, computed: bool
    ) -> None: ...


class Backend(Protocol):
    """One expert as the pool sees it."""

    name: str
    expert: ExpertConfig
    down: dict[str, str]
    """URLs down in the last `info` or `run`, with their last error (empty for local models)."""
    renders_chat_locally: bool
    """True when chat requests go through the tokenizer's chat template in this process (so the
    tokenizer must carry one); False when the server applies its own."""

    async def info(self, session: aiohttp.ClientSession) -> ExpertInfo:
        """Identity and limits; raises `EndpointDownError` when it cannot be known."""
        ...

    def tokenizer(self) -> Any:
        """The tokenizer that carries the chat template; raises `ModelLoadError`."""
        ...

    def check(self, request: Request) -> None:
        """Raises `UnsupportedFeatureError` for a request this backend cannot serve."""
        ...

    async def run(self, session: aiohttp.ClientSession, calls: Sequence[Call], sink: Sink) -> None:
        """Send every call; each ends in exactly one `sink.finished` (a failure is a result)."""
        ...

