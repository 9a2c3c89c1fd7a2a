"""`ExpertPool`: every LLM call of a phase, through the journal, to each expert's backend.

    with ExpertPool.from_config(config) as pool:
        prequery = pool.mining_prefix("qwen", MINING_SYSTEM_PROMPT)
        results = pool.run(requests, desc="mine")   # same order as requests

Each expert is one backend (`generation.backend`: TGI, OpenAI-compatible or in-process); the
pool talks only to that interface. `run` is synchronous: it runs its own event loop (in a
worker thread when the calling thread already runs one) and closes its HTTP session before
returning. A request whose key is in the journal with a result is not sent again; each new
result is committed as it arrives.

Partial failure, the contract: before anything is sent, every request is checked against its
backend (a constraint the server cannot take raises `UnsupportedFeatureError` then). When some
calls fail for good (retries exhausted, a 4xx answer, an expert down), `run` first finishes
every call it can reach and journals it, then, by default, raises `GenerationFailed` (its
`results` hold every result, failed ones with `error` set); phases that need every answer rely
on that. `run(..., allow_failures=True)` returns the results instead, failed ones with `ok`
False, for callers that record failures per result (evaluation's `generation_failed`). Either
way the next run sends only the calls without a result.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from warriorcoder import errors
from warriorcoder.config import ArenaConfig, ExpertConfig, GenerationConfig
from warriorcoder.generation.backend import Backend, Call
from warriorcoder.generation.journal import Journal, request_key
from warriorcoder.generation.progress import Progress
from warriorcoder.generation.templates import ChatTemplate, template_for
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    ExpertInfo,
    GenerationResult,
    PreQuery,
    ReplyFormat,
    Request,
    TokenUsage,
)
from warriorcoder.generation.wire import describe_down

logger = logging.getLogger(__name__)
T = TypeVar("T")

EndpointDown = errors.EndpointDownError
"""The old name of `errors.EndpointDownError`, kept importable."""
GenerationFailed = errors.GenerationFailed
"""Defined in `errors`; kept importable from here."""


def backend_for(
    expert: ExpertConfig, generation: GenerationConfig, journal: Journal, cache_root: Path
) -> Backend:
    """The backend of one expert's config: `local`, else `api` (tgi or openai).

    Raises `MissingSecretError` when `token_env`/`headers_env` name an unset variable."""
    if expert.local is not None:
        from warriorcoder.generation.local import LocalBackend

        return LocalBackend(expert, generation, cache_root)
    if expert.api == "openai":
        from warriorcoder.generation.openai_compat import OpenAIBackend

        return OpenAIBackend(expert, generation, journal)
    from warriorcoder.generation.tgi import TGIBackend

    return TGIBackend(expert, generation, journal)


@dataclass
class _RunState:
    """One run's results and progress; backends report to it (`backend.Sink`)."""

    pool: ExpertPool
    results: list[GenerationResult | None]
    progress: Progress

    def sent(self) -> None:
        self.progress.sent()

    def finished(self, call: Call, result: GenerationResult, attempts: int, computed: bool) -> None:
        self.pool._finish(call, result, attempts, computed, self)


@dataclass
class _Outcome:
    results: list[GenerationResult]
    failures: list[tuple[Request, str]] = field(default_factory=list)
    down: dict[str, list[str]] = field(default_factory=dict)


class ExpertPool:
    """The experts of an arena behind one journal; see the module docstring."""

    def __init__(
        self,
        experts: Sequence[ExpertConfig],
        generation: GenerationConfig,
        *,
        progress: bool | None = None,
    ) -> None:
        """Raises `MissingSecretError` for an unset `token_env`/`headers_env`, and
        `ModelLoadError` for a local model that is not there."""
        self.experts = {expert.name: expert for expert in experts}
        self.config = generation
        self.progress = progress
        self.journal = Journal(generation.journal)
        self.cache_root = Path(generation.journal).parent / "models"
        self.backends: dict[str, Backend] = {
            e.name: backend_for(e, generation, self.journal, self.cache_root) for e in experts
        }
        self._infos: dict[str, ExpertInfo] = {}
        self._tokenizers: dict[str, Any] = {}
        self._prequeries: dict[tuple[str, str | None], PreQuery] = {}
        self._reply_formats: dict[str, ReplyFormat] = {}
        self._usage = {name: TokenUsage() for name in self.experts}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ArenaConfig, *, progress: bool | None = None) -> ExpertPool:
        """The pool of an arena config; its journal is `config.generation.journal`."""
        return cls(config.experts, config.generation, progress=progress)

    # -- identity and templates -------------------------------------------------------------

    def _backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            raise errors.UnknownNameError(
                f"unknown expert {name!r}; known experts: {sorted(self.experts)}"
            ) from None

    def info(self, expert: str) -> ExpertInfo:
        """Identity and limits from the server (or the local weights); cached.

        Raises `EndpointDownError` when no URL answers and the journal never saw one."""
        backend = self._backend(expert)
        if expert not in self._infos:
            self._sync(lambda: self._with_session(self._refresh, [expert]))
            if expert not in self._infos:
                raise errors.EndpointDownError(
                    f"expert {expert!r}: no endpoint answers: {describe_down(backend.down)}"
                )
        return self._infos[expert]

    def tokenizer(self, expert: str) -> Any:
        """The expert's tokenizer (`tokenizer`, else the local model's, else `model_id`).

        Raises `ModelLoadError` naming the expert when it cannot be loaded (offline)."""
        backend = self._backend(expert)
        if expert not in self._tokenizers:
            self._tokenizers[expert] = backend.tokenizer()
        return self._tokenizers[expert]

    def renders_chat_locally(self, expert: str) -> bool:
        """Whether chat requests of `expert` go through its tokenizer's chat template here
        (a local model) rather than the server's own."""
        return self._backend(expert).renders_chat_locally

    def mining_prefix(self, expert: str, system_prompt: str | None) -> PreQuery:
        """The pre-query prefix and user-turn stop strings from the expert's chat template.

        Raises `TemplateError` when no template can give one (naming the fix)."""
        cache_key = (expert, system_prompt)
        if cache_key not in self._prequeries:
            self._prequeries[cache_key] = self.chat_template(expert).pre_query(system_prompt)
        return self._prequeries[cache_key]

    def reply_format(self, expert: str) -> ReplyFormat:
        """The expert's chat template around one user turn and its reply, for prefilled
        replies sent as raw completions. Raises `TemplateError` as `mining_prefix` does."""
        if expert not in self._reply_formats:
            self._reply_formats[expert] = self.chat_template(expert).reply_format()
        return self._reply_formats[expert]

    def chat_template(self, expert: str) -> ChatTemplate:
        """The expert's `chat_template`, else its tokenizer's. Raises `TemplateError`."""
        config = self._backend(expert).expert
        tokenizer, error = None, None
        try:
            tokenizer = self.tokenizer(expert)
        except errors.ModelLoadError as failure:  # offline without it: an override may do
            error = failure
        return template_for(config, tokenizer, error)

    def usage(self) -> dict[str, TokenUsage]:
        """Tokens and calls per expert since the pool was made (copies)."""
        with self._lock:
            return {
                name: replace(usage, extra=dict(usage.extra)) for name, usage in self._usage.items()
            }

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> ExpertPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -----------------------------------------------------------------------------

    def run(
        self, requests: Sequence[Request], desc: str, *, allow_failures: bool = False
    ) -> list[GenerationResult]:
        """Results in the order of `requests` (see the module docstring for failures).

        Raises `UnsupportedFeatureError` before sending anything when a backend cannot serve
        a request, and `GenerationFailed` after the fact when calls failed for good (unless
        `allow_failures`: the failed results, `ok` False, are then returned with the rest)."""
        requests = list(requests)
        unknown = sorted({r.expert for r in requests} - set(self.experts))
        if unknown:
            raise errors.UnknownNameError(
                f"requests name unknown experts {unknown}; known: {sorted(self.experts)}"
            )
        checked: set[tuple[str, str]] = set()
        for request in requests:
            if not isinstance(request, CompletionRequest | ChatRequest):
                raise TypeError(f"not a CompletionRequest or ChatRequest: {request!r}")
            grammar = request.params.grammar
            mark = (request.expert, repr(grammar) if grammar else "")
            if mark not in checked:  # one check per expert and constraint
                checked.add(mark)
                self.backends[request.expert].check(request)
        if not requests:
            return []
        outcome = self._sync(lambda: self._with_session(self._run, requests, desc))
        if outcome.failures and not allow_failures:
            raise GenerationFailed(
                outcome.failures, outcome.down, outcome.results, self.journal.path
            )
        if outcome.failures:
            logger.warning("%s: %d of %d calls failed (recorded per result)", desc,
                           len(outcome.failures), len(requests))
        return outcome.results

    def _sync(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine to completion on a fresh loop, in a worker thread if one runs here."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(make())  # type: ignore[arg-type]
        with ThreadPoolExecutor(1, thread_name_prefix="warriorcoder-run") as executor:
            return executor.submit(asyncio.run, make()).result()  # type: ignore[arg-type]

    async def _with_session(self, body: Callable[..., Awaitable[T]], *args: Any) -> T:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await body(session, *args)

    async def _refresh(self, session: aiohttp.ClientSession, names: Sequence[str]) -> None:
        """Ask these experts' backends who they are; an expert down and never seen stays out
        of `_infos` (its backend's `down` says why)."""

        async def one(name: str) -> None:
            try:
                self._infos[name] = await self.backends[name].info(session)
            except errors.EndpointDownError:
                self._infos.pop(name, None)

        await asyncio.gather(*(one(name) for name in names))

    async def _run(
        self, session: aiohttp.ClientSession, requests: list[Request], desc: str
    ) -> _Outcome:
        names = sorted({r.expert for r in requests})
        await self._refresh(session, names)

        calls: dict[str, Call] = {}
        unkeyed: list[int] = []
        for index, request in enumerate(requests):
            info = self._infos.get(request.expert)
            if info is None:
                unkeyed.append(index)
                continue
            key, canonical = request_key(request, info.model_id, info.model_revision)
            call = calls.get(key)
            if call is None:
                call = calls[key] = Call(request, key, canonical)
            call.indexes.append(index)

        results: list[GenerationResult | None] = [None] * len(requests)
        cached = self.journal.results(calls)
        pending: dict[str, list[Call]] = {}
        with self._lock:
            for key, call in calls.items():
                if key in cached:
                    for index in call.indexes:
                        results[index] = cached[key]
                    self._usage[call.request.expert].cached += len(call.indexes)
                else:
                    pending.setdefault(call.request.expert, []).append(call)
            for index in unkeyed:
                name = requests[index].expert
                results[index] = self._down_result(name)
                self._usage[name].failures += 1
        done = sum(r is not None for r in results)
        state = _RunState(self, results, Progress(len(requests), desc, done, self.progress))
        try:
            await asyncio.gather(
                *(self.backends[name].run(session, items, state) for name, items in pending.items())
            )
        finally:
            state.progress.close()
        final = [r for r in results if r is not None]
        assert len(final) == len(requests)
        failures = [(requests[i], r.error or "") for i, r in enumerate(final) if not r.ok]
        down = {
            name: [f"{url} ({error})" for url, error in self.backends[name].down.items()]
            for name in names
            if self.backends[name].down
        }
        return _Outcome(final, failures, down)

    def _down_result(self, name: str) -> GenerationResult:
        backend = self.backends[name]
        where = describe_down(backend.down) or ", ".join(backend.expert.urls)
        return GenerationResult.failure(
            f"not sent: expert {name!r} is down and was never seen before: {where}",
            backend.expert.model_id,
        )

    def _finish(
        self, call: Call, result: GenerationResult, attempts: int, computed: bool, state: _RunState
    ) -> None:
        name = call.request.expert
        if computed:
            self.journal.record(call.key, name, call.kind, call.canonical, result, attempts)
        for index in call.indexes:
            state.results[index] = result
        with self._lock:
            usage = self._usage[name]
            usage.extra["attempts"] = usage.extra.get("attempts", 0) + attempts
            if result.ok:
                usage.requests += 1
                usage.prompt_tokens += result.prompt_tokens
                usage.generated_tokens += result.generated_tokens
            else:
                usage.failures += len(call.indexes)
        state.progress.done(result.generated_tokens, not result.ok, len(call.indexes))
