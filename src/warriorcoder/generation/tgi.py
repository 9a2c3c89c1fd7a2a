"""A TGI client on aiohttp: `/info`, `/generate` and `/v1/chat/completions` with TGI's rules.

It speaks the protocol `huggingface_hub.AsyncInferenceClient` speaks, without its per-call
cost: measured with benchmarks/generation_throughput.py (C=64, L=0.1 s), AsyncInferenceClient
spends 1.4-2.1 ms of client CPU per call (httpx, a thread hop per response, a token lookup per
call) and reaches 0.7 of a bare aiohttp client's rate; this client with the journal spends
~0.4 ms and reaches 0.98 of it. AsyncInferenceClient also refuses every URL, a local TGI
included, when `HF_HUB_OFFLINE=1`, and sends the user's saved Hub token to any URL when no
token is given; here only the expert's `token_env` is sent, and only to its own URLs.

TGI's rules: `top_p` must be in (0, 1), so 1.0 is sent as "not set"; temperature 0 means greedy
(`do_sample` false); at most `max_stop_sequences` stop strings go to the server and every stop
string is applied to the text here (it is cut before the earliest one); 429 means overloaded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    ExpertInfo,
    FinishReason,
    GenerationResult,
    Request,
)

logger = logging.getLogger(__name__)


class CallError(Exception):
    """One failed attempt; `retryable` for 429, 5xx, timeouts and connection errors."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def endpoint_headers(expert: ExpertConfig) -> dict[str, str]:
    """Headers from the environment (`token_env`, `headers_env`); never stored or logged."""
    headers: dict[str, str] = {}
    if expert.headers_env:
        raw = os.environ.get(expert.headers_env)
        if raw is None:
            raise ValueError(
                f"expert {expert.name!r}: headers_env names {expert.headers_env}, which is not "
                "set; export it as a JSON object of headers, or remove headers_env"
            )
        try:
            extra = json.loads(raw)
        except json.JSONDecodeError:
            extra = None
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            raise ValueError(
                f"expert {expert.name!r}: {expert.headers_env} must hold a JSON object of "
                'string headers, e.g. \'{"X-Org": "abc"}\''
            )
        headers.update(extra)
    if expert.token_env:
        token = os.environ.get(expert.token_env)
        if not token:
            raise ValueError(
                f"expert {expert.name!r}: token_env names {expert.token_env}, which is not set; "
                "export the endpoint's token there, or remove token_env"
            )
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


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
    body: bytes | None = None,
) -> Any:
    """One HTTP exchange, every failure turned into a `CallError`."""
    try:
        async with session.request(method, url, data=body, headers=headers, timeout=timeout) as r:
            raw = await r.read()
            if r.status == 200:
                return json.loads(raw) if raw else None
            detail = raw[:500].decode(errors="replace")
            try:
                parsed = json.loads(raw)
                if isinstance(parsed, dict) and "error" in parsed:
                    detail = f"{parsed.get('error_type', 'error')}: {parsed['error']}"
            except ValueError:
                pass
            retryable = r.status == 429 or r.status >= 500
            raise CallError(f"HTTP {r.status} from {url}: {detail}", retryable, _retry_after(r))
    except TimeoutError:
        raise CallError(f"timed out after {timeout.total}s: {url}", retryable=True) from None
    except aiohttp.ClientError as error:
        raise CallError(f"{type(error).__name__} on {url}: {error}", retryable=True) from None
    except json.JSONDecodeError as error:
        raise CallError(f"invalid JSON from {url}: {error}", retryable=True) from None


async def fetch_info(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    config: GenerationConfig,
) -> dict[str, Any]:
    """GET `<url>/info`, retried like a generation call."""
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    for attempt in range(config.max_retries + 1):
        try:
            info = await _request(session, "GET", f"{url}/info", headers, timeout)
            if not isinstance(info, dict) or "model_id" not in info:
                raise CallError(f"{url}/info is not a TGI /info answer", retryable=False)
            return info
        except CallError as error:
            if not error.retryable or attempt == config.max_retries:
                raise
            await asyncio.sleep(backoff_delay(attempt, config, error.retry_after))
    raise AssertionError("unreachable")


def expert_info(name: str, info: dict[str, Any], max_concurrency: int | None) -> ExpertInfo:
    """`ExpertInfo` from a TGI `/info` payload (`model_sha` is the revision)."""
    return ExpertInfo(
        name=name,
        model_id=str(info["model_id"]),
        model_revision=str(info.get("model_sha") or ""),
        max_stop_sequences=int(info.get("max_stop_sequences") or 4),
        max_concurrent_requests=int(max_concurrency or info.get("max_concurrent_requests") or 128),
        max_input_tokens=info.get("max_input_tokens") or info.get("max_input_length"),
        max_total_tokens=info.get("max_total_tokens"),
    )


def cut_at_stops(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    cut = -1
    for stop in stops:
        if stop:
            pos = text.find(stop)
            if pos >= 0 and (cut < 0 or pos < cut):
                cut = pos
    return (text, False) if cut < 0 else (text[:cut], True)


def generate_body(request: CompletionRequest, max_stop: int) -> bytes:
    """The `/generate` request body."""
    p = request.params
    params: dict[str, Any] = {
        "max_new_tokens": p.max_new_tokens,
        "details": True,
        "return_full_text": False,
        "seed": p.seed,
        "do_sample": p.temperature > 0,
    }
    if p.temperature > 0:
        params["temperature"] = p.temperature
    if p.top_p < 1.0:
        params["top_p"] = p.top_p
    if p.stop:
        params["stop"] = list(p.stop[:max_stop])
    if p.grammar is not None:
        params["grammar"] = p.grammar
    return json.dumps({"inputs": request.prompt, "parameters": params}).encode()


def chat_body(request: ChatRequest, max_stop: int) -> bytes:
    """The `/v1/chat/completions` request body (temperature 0 is greedy in TGI's chat route)."""
    p = request.params
    body: dict[str, Any] = {
        "model": "tgi",
        "messages": [{"role": role, "content": content} for role, content in request.messages],
        "max_tokens": p.max_new_tokens,
        "temperature": p.temperature,
        "seed": p.seed,
        "stream": False,
    }
    if p.top_p < 1.0:
        body["top_p"] = p.top_p
    if p.stop:
        body["stop"] = list(p.stop[:max_stop])
    if p.grammar is not None:
        body["response_format"] = p.grammar
    return json.dumps(body).encode()


_CHAT_FINISH: dict[str, FinishReason] = {
    "length": "length",
    "stop": "eos_token",
    "eos_token": "eos_token",
    "stop_sequence": "stop_sequence",
}


@dataclass
class Endpoint:
    """One TGI URL during one run: its concurrency slots and health."""

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


@dataclass
class TGIExpert:
    """One expert's TGI URLs during one run: least-loaded routing, retries, stop handling."""

    name: str
    info: ExpertInfo
    endpoints: list[Endpoint]
    session: aiohttp.ClientSession
    headers: dict[str, str]
    config: GenerationConfig
    count_prompt: Callable[[str], int] | None = None
    """Client-side prompt token count for `/generate` (None: 0 unless TGI sends prefill)."""
    timeout: aiohttp.ClientTimeout = field(init=False)

    def __post_init__(self) -> None:
        self.timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)

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
        return GenerationResult(
            text="",
            finish_reason="error",
            generated_tokens=0,
            prompt_tokens=0,
            model_id=self.info.model_id,
            model_revision=self.info.model_revision,
            error=message,
        )

    async def call(self, request: Request) -> Outcome:
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
                        result = await self._attempt(endpoint, request)
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

    async def _attempt(self, endpoint: Endpoint, request: Request) -> GenerationResult:
        max_stop = self.info.max_stop_sequences
        if isinstance(request, CompletionRequest):
            body = await _request(
                self.session,
                "POST",
                f"{endpoint.url}/generate",
                self.headers,
                self.timeout,
                generate_body(request, max_stop),
            )
            return self._completion_result(request, body)
        body = await _request(
            self.session,
            "POST",
            f"{endpoint.url}/v1/chat/completions",
            self.headers,
            self.timeout,
            chat_body(request, max_stop),
        )
        return self._chat_result(request, body)

    def _completion_result(self, request: CompletionRequest, body: Any) -> GenerationResult:
        if isinstance(body, list):  # the compat route answers a list
            body = body[0]
        try:
            text = body["generated_text"]
            details = body.get("details") or {}
        except (KeyError, TypeError, AttributeError):
            raise CallError(f"unexpected /generate answer: {str(body)[:200]}", True) from None
        reason: FinishReason = details.get("finish_reason") or "eos_token"
        if reason not in ("length", "eos_token", "stop_sequence"):
            reason = "eos_token"
        text, cut = cut_at_stops(text, request.params.stop)
        if cut:
            reason = "stop_sequence"
        prefill = details.get("prefill")
        if prefill:
            prompt_tokens = len(prefill)
        elif self.count_prompt is not None:
            prompt_tokens = self.count_prompt(request.prompt)
        else:
            prompt_tokens = 0
        return GenerationResult(
            text=text,
            finish_reason=reason,
            generated_tokens=int(details.get("generated_tokens") or 0),
            prompt_tokens=prompt_tokens,
            model_id=self.info.model_id,
            model_revision=self.info.model_revision,
        )

    def _chat_result(self, request: ChatRequest, body: Any) -> GenerationResult:
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            usage = body.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            raise CallError(f"unexpected chat answer: {str(body)[:200]}", True) from None
        reason = _CHAT_FINISH.get(choice.get("finish_reason") or "stop", "eos_token")
        text, cut = cut_at_stops(text, request.params.stop)
        if cut:
            reason = "stop_sequence"
        return GenerationResult(
            text=text,
            finish_reason=reason,
            generated_tokens=int(usage.get("completion_tokens") or 0),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            model_id=self.info.model_id,
            model_revision=self.info.model_revision,
        )
