"""What every HTTP backend shares: one exchange, retries with backoff, routing over an expert's
URLs, their health, the `/info`-style identity cache, and the worker loop of a run.

`HTTPBackend` is the base of the TGI and the OpenAI-compatible backends; a subclass says how
to ask a URL who it is (`fetch_identity`), how to turn that answer into an `ExpertInfo`
(`info_from`) and how to make one call (`attempt`). Failures of one attempt are `CallError`s:
429, 5xx, timeouts, dropped connections and unreadable answers are retried with exponential
backoff (honouring `Retry-After`); other 4xx answers are recorded at once (the request itself is
wrong, sending it again gives the same answer).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.errors import ConfigError, EndpointDownError, ModelLoadError
from warriorcoder.generation.backend import Call, Sink
from warriorcoder.generation.guided import check_grammar
from warriorcoder.generation.journal import Journal
from warriorcoder.generation.templates import load_tokenizer
from warriorcoder.generation.types import ExpertInfo, GenerationResult, Request
from warriorcoder.generation.wire import CallError, describe_down
from warriorcoder.secrets import read_json_headers, read_secret

logger = logging.getLogger(__name__)


def endpoint_headers(expert: ExpertConfig) -> dict[str, str]:
    """Headers from the environment (`token_env`, `headers_env`); never stored or logged.

    Raises `MissingSecretError` naming the expert and the variable when one is unset."""
    headers: dict[str, str] = {}
    if expert.headers_env:
        what = f"expert {expert.name!r}: headers_env"
        headers.update(read_json_headers(expert.headers_env, what))
    if expert.token_env:
        token = read_secret(expert.token_env, f"expert {expert.name!r}: token_env")
        headers["Authorization"] = f"Bearer {token}"
    headers.setdefault("Content-Type", "application/json")
    return headers


def backoff_delay(attempt: int, config: GenerationConfig, retry_after: float | None) -> float:
    """Exponential backoff with jitter (50-150% of base * 2^attempt), capped; honours
    Retry-After."""
    delay = min(config.backoff_max_s, config.backoff_base_s * 2**attempt)
    delay *= random.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, config.backoff_max_s)


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_detail(raw: bytes) -> str:
    """The message of an error body: TGI's `{"error", "error_type"}`, OpenAI's
    `{"error": {"message", "type"}}` or vLLM's `{"object": "error", "message", "type"}`."""
    detail = raw[:500].decode(errors="replace")
    try:
        parsed = json.loads(raw)
    except ValueError:
        return detail
    if not isinstance(parsed, dict):
        return detail
    error = parsed.get("error")
    if isinstance(error, dict) and "message" in error:
        return f"{error.get('type') or 'error'}: {error['message']}"
    if isinstance(error, str):
        return f"{parsed.get('error_type', 'error')}: {error}"
    if "message" in parsed:
        return f"{parsed.get('type') or 'error'}: {parsed['message']}"
    return detail


async def http_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
    body: bytes | None = None,
) -> Any:
    """One HTTP exchange returning the JSON answer; every failure turned into a `CallError`."""
    try:
        async with session.request(method, url, data=body, headers=headers, timeout=timeout) as r:
            raw = await r.read()
            if r.status == 200:
                return json.loads(raw) if raw else None
            retryable = r.status == 429 or r.status >= 500
            raise CallError(
                f"HTTP {r.status} from {url}: {error_detail(raw)}", retryable, _retry_after(r)
            )
    except TimeoutError:
        raise CallError(f"timed out after {timeout.total}s: {url}", retryable=True) from None
    except aiohttp.ClientError as error:
        raise CallError(f"{type(error).__name__} on {url}: {error}", retryable=True) from None
    except json.JSONDecodeError as error:
        raise CallError(f"invalid JSON from {url}: {error}", retryable=True) from None


@dataclass
class Endpoint:
    """One URL during one run: its concurrency slots and health."""

    url: str
    limit: int
    semaphore: asyncio.Semaphore
    in_flight: int = 0
    down: bool = False
    last_success: float = 0.0
    last_error: str = ""


@dataclass
class Outcome:
    """What one call produced after its retries."""

    result: GenerationResult
    attempts: int
    computed: bool
    """True when a server answered (the result is journaled either way)."""


Attempt = Callable[[Endpoint, Request], Any]
"""`async (endpoint, request) -> GenerationResult`; raises `CallError`."""


@dataclass
class Router:
    """One expert's URLs during one run: least-loaded routing, retries, health."""

    name: str
    info: ExpertInfo
    endpoints: list[Endpoint]
    config: GenerationConfig

    @property
    def down(self) -> bool:
        return all(endpoint.down for endpoint in self.endpoints)

    @property
    def capacity(self) -> int:
        return sum(endpoint.limit for endpoint in self.endpoints if not endpoint.down)

    def _pick(self) -> Endpoint | None:
        live = [e for e in self.endpoints if not e.down]
        return min(live, key=lambda e: e.in_flight / e.limit) if live else None

    def error_result(self, message: str) -> GenerationResult:
        return GenerationResult.failure(message, self.info.model_id, self.info.model_revision)

    async def call(self, request: Request, attempt_once: Attempt) -> Outcome:
        """Send one request, retrying retryable failures with backoff, on any live URL."""
        started = time.monotonic()
        error = CallError("no attempt", retryable=True)
        attempt = 0
        for attempt in range(self.config.max_retries + 1):
            endpoint = self._pick()
            if endpoint is None:
                return Outcome(self.error_result(self.down_message()), attempt, attempt > 0)
            try:
                async with endpoint.semaphore:
                    endpoint.in_flight += 1
                    try:
                        result = await attempt_once(endpoint, request)
                    finally:
                        endpoint.in_flight -= 1
                endpoint.last_success = time.monotonic()
                return Outcome(result, attempt + 1, True)
            except CallError as failure:
                error = failure
                endpoint.last_error = str(failure)
                if not failure.retryable:
                    return Outcome(self.error_result(str(failure)), attempt + 1, True)
                if attempt < self.config.max_retries:
                    await asyncio.sleep(backoff_delay(attempt, self.config, failure.retry_after))
        # Retries exhausted: URLs with no success since this call began are taken as down.
        for endpoint in self.endpoints:
            if endpoint.last_success < started and not endpoint.down:
                endpoint.down = True
                logger.warning("expert %s: %s stays down (%s)", self.name, endpoint.url, error)
        message = f"failed after {attempt + 1} attempts: {error}"
        return Outcome(self.error_result(message), attempt + 1, True)

    def down_message(self) -> str:
        urls = ", ".join(f"{e.url} ({e.last_error})" for e in self.endpoints)
        return f"not sent: every endpoint of expert {self.name!r} stays down: {urls}"


class HTTPBackend:
    """An expert behind one or more HTTP URLs (see the module docstring)."""

    kind = "http"
    renders_chat_locally = False

    def __init__(self, expert: ExpertConfig, generation: GenerationConfig, journal: Journal):
        self.expert = expert
        self.name = expert.name
        self.config = generation
        self.journal = journal
        self.headers = endpoint_headers(expert)
        self.timeout = aiohttp.ClientTimeout(total=generation.timeout_s)
        self._info: ExpertInfo | None = None
        self._tokenizer: Any = None
        self._counter: Callable[[str], int] | None = None
        self.down: dict[str, str] = {}
        """URLs that are (or went) down in the last refresh or run, with their last error."""

    # -- what a subclass says --------------------------------------------------------------

    def cache_key(self, url: str) -> str:
        """Under which name the journal keeps a URL's identity answer."""
        return url

    async def fetch_identity(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        raise NotImplementedError

    def info_from(self, payload: dict[str, Any]) -> ExpertInfo:
        raise NotImplementedError

    def identity(self, payload: dict[str, Any]) -> tuple[Any, ...]:
        """What must agree between an expert's URLs (they must serve one model)."""
        info = self.info_from(payload)
        return (info.model_id, info.model_revision)

    async def attempt(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, request: Request
    ) -> GenerationResult:
        raise NotImplementedError

    def check(self, request: Request) -> None:
        """Raise `UnsupportedFeatureError` for a request this server cannot serve (a grammar
        its `guided_decoding` cannot carry)."""
        check_grammar(self.expert, request.params.grammar)

    # -- the protocol --------------------------------------------------------------------------

    def tokenizer(self) -> Any:
        """The tokenizer of `tokenizer` (default `model_id`); raises `ModelLoadError`."""
        if self._tokenizer is None:
            source = self.expert.tokenizer or self.expert.model_id
            try:
                self._tokenizer = load_tokenizer(source)
            except Exception as error:  # offline without a cached copy, a bad path
                raise ModelLoadError(
                    f"expert {self.name!r}: its tokenizer {source!r} cannot be loaded "
                    f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                    "); set `tokenizer:` to a local tokenizer folder (or a hub id in the local "
                    "cache)"
                ) from error
        return self._tokenizer

    async def info(self, session: aiohttp.ClientSession) -> ExpertInfo:
        """Ask every URL who it is; the last known answer stands in while all are down.

        Raises `EndpointDownError` when no URL answers and the journal has never seen one."""
        answers = await asyncio.gather(
            *(self._fetch_retried(session, url) for url in self.expert.urls),
            return_exceptions=True,
        )
        live: dict[str, dict[str, Any]] = {}
        self.down = {}
        for url, answer in zip(self.expert.urls, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, CallError):
                    raise answer
                self.down[url] = str(answer)
            else:
                live[url] = answer
        identities = {self.identity(payload) for payload in live.values()}
        if len(identities) > 1:
            raise ConfigError(
                f"expert {self.name!r}: its URLs serve different models {sorted(identities)}; "
                "give each model its own expert"
            )
        if live:
            for url, payload in live.items():
                self.journal.save_info(self.cache_key(url), payload)
            self._info = self.info_from(next(iter(live.values())))
            if not self._info.model_revision:
                logger.warning(
                    "expert %s: the server reports no model revision and the config gives no "
                    "`revision`, so the journal cannot tell revisions of %s apart",
                    self.name,
                    self._info.model_id,
                )
            return self._info
        cached = next(
            (p for url in self.expert.urls if (p := self.journal.load_info(self.cache_key(url)))),
            None,
        )
        if cached is None:
            raise EndpointDownError(
                f"expert {self.name!r}: no endpoint answers: {describe_down(self.down)}"
            )
        logger.warning("expert %s is down; using its last known identity for the journal",
                       self.name)
        self._info = self.info_from(cached)
        return self._info

    async def _fetch_retried(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        for attempt in range(self.config.max_retries + 1):
            try:
                return await self.fetch_identity(session, url)
            except CallError as error:
                if not error.retryable or attempt == self.config.max_retries:
                    raise
                await asyncio.sleep(backoff_delay(attempt, self.config, error.retry_after))
        raise AssertionError("unreachable")

    async def run(self, session: aiohttp.ClientSession, calls: Sequence[Call], sink: Sink) -> None:
        """Send `calls` over the live URLs, at most `max_concurrent_requests` per URL."""
        assert self._info is not None, "info() runs before run()"
        limit = self._info.max_concurrent_requests
        endpoints = [
            Endpoint(url, limit, asyncio.Semaphore(limit), down=url in self.down,
                     last_error=self.down.get(url, ""))
            for url in self.expert.urls
        ]
        router = Router(self.name, self._info, endpoints, self.config)
        queue = deque(calls)

        def attempt_once(endpoint: Endpoint, request: Request) -> Any:
            return self.attempt(session, endpoint, request)

        async def worker() -> None:
            while queue:
                call = queue.popleft()
                sink.sent()
                outcome = await router.call(call.request, attempt_once)
                sink.finished(call, outcome.result, outcome.attempts, outcome.computed)

        await asyncio.gather(*(worker() for _ in range(max(1, min(router.capacity, len(calls))))))
        self.down = {e.url: e.last_error for e in endpoints if e.down}

    def prompt_counter(self) -> Callable[[str], int] | None:
        """Client-side prompt token counts, where the tokenizer is already loaded."""
        tokenizer = self._tokenizer
        if tokenizer is None:
            return None
        if self._counter is None:

            @functools.lru_cache(maxsize=4096)
            def count(prompt: str) -> int:
                return len(tokenizer(prompt)["input_ids"])

            self._counter = count
        return self._counter

