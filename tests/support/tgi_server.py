"""A text-generation-inference (TGI) protocol test server for tests, benchmarks and examples.

It follows TGI's OpenAPI spec for `GET /info`, `GET /health`, `POST /generate`, `POST /` (the
compat route `InferenceClient.text_generation` posts to) and `POST /v1/chat/completions`,
including TGI's validation (422 `{"error", "error_type"}` for `top_p` outside (0, 1), more stop
sequences than `max_stop_sequences`, ...). Several fake models can be served by one server,
each under its own path (`http://127.0.0.1:PORT/<name>`) with its own `model_id`/`model_sha`.

Answers are deterministic functions of (model, prompt or messages, seed), produced by a
`responder` per model: a callable `(kind, payload, model_name) -> text`, where kind is
`"generate"` or `"chat"` and payload the request body. The server applies `max_new_tokens`
(whitespace-delimited "tokens") and stop sequences to what the responder returns, the way TGI
does (a matched stop sequence stays at the end of the text).

Faults (429, 503, 500, hanging until the client times out, dropped connections) are injected
at a given rate, latency and a concurrency cap (TGI answers 429 past `max_concurrent_requests`)
can be set, and every call is counted. Run it in a thread (`TGITestServer`) or in its own
process (`python -m tests.support.tgi_server`, or `spawn_server`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import importlib
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.threaded import LoopThread

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root, put on PYTHONPATH of spawned servers (`tests.support` is not installed)."""

Responder = Callable[[str, dict[str, Any], str], str]
"""`(kind, payload, model_name) -> text`; kind is "generate" or "chat"."""

FAULT_KINDS = ("429", "503", "500", "timeout", "drop")
_TOKEN_RE = re.compile(r"\s*\S+")
_WORDS = (
    "list",
    "string",
    "parser",
    "cache",
    "graph",
    "tree",
    "matrix",
    "queue",
    "stack",
    "heap",
    "binary",
    "search",
    "sort",
    "merge",
    "interval",
    "window",
    "prefix",
    "suffix",
    "hash",
    "set",
    "map",
    "counter",
    "stream",
    "buffer",
    "file",
    "json",
    "csv",
    "regex",
    "decorator",
    "generator",
    "iterator",
    "class",
    "recursion",
    "memo",
    "dynamic",
    "greedy",
    "path",
    "node",
    "edge",
    "cycle",
)


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per whitespace-delimited word (leading space included)."""
    return len(_TOKEN_RE.findall(text))


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def default_responder(kind: str, payload: dict[str, Any], model_name: str) -> str:
    """Deterministic text from (model, prompt or messages, seed).

    `generate` answers look like a mined user instruction followed by the request's first stop
    string (as a model completing a pre-query prefix would); `chat` answers look like an answer.
    """
    params = payload.get("parameters") or {}
    seed = params.get("seed", payload.get("seed"))
    source = payload.get("inputs") if kind == "generate" else payload.get("messages")
    digest = _digest(model_name, kind, source, seed)
    rng = random.Random(digest)
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14)))
    if kind == "generate":
        stop = params.get("stop") or []
        tail = stop[0] if stop else ""
        return f"Write a Python function about {words} ({digest[:8]}).{tail}"
    return f"Answer {digest[:8]} from {model_name}: {words}."


def arena_responder(kind: str, payload: dict[str, Any], model_name: str) -> str:
    """`default_responder`, except that difficulty prompts get a score and judge prompts a
    verdict: enough for mine -> select to run on any server that serves it."""
    content = "\n".join(str(m.get("content", "")) for m in payload.get("messages") or [])
    if "[[A]]" in content:
        return "The first answer is complete.\n[[A]]"
    if "Score" in content or "difficulty" in content.lower():
        return "A clear task with constraints.\nScore: 7"
    return default_responder(kind, payload, model_name)


@dataclass
class FakeModel:
    """One model the server pretends to serve."""

    model_id: str
    model_sha: str | None = None
    responder: Responder | None = None
    max_stop_sequences: int = 4
    max_concurrent_requests: int = 128
    max_input_tokens: int = 8191
    max_total_tokens: int = 8192

    def __post_init__(self) -> None:
        if self.model_sha is None:
            self.model_sha = hashlib.sha1(self.model_id.encode()).hexdigest()

    def info(self) -> dict[str, Any]:
        """The TGI `/info` payload."""
        return {
            "model_id": self.model_id,
            "model_sha": self.model_sha,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": self.max_concurrent_requests,
            "max_best_of": 2,
            "max_stop_sequences": self.max_stop_sequences,
            "max_input_tokens": self.max_input_tokens,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": "3.3.6-test",
            "sha": None,
            "docker_label": None,
        }


@dataclass
class Faults:
    """Inject a fault into a share `rate` of generation calls, the kind drawn from `kinds`."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "503", "timeout", "drop")
    hang_s: float = 60.0
    """How long a "timeout" fault holds the request (the client should time out first)."""
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be among {FAULT_KINDS}; got {self.kinds}")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"fault rate must be in [0, 1]; got {self.rate}")


@dataclass
class ServerStats:
    """Counters of one server; `served_inputs` counts successful answers per prompt/messages."""

    calls: Counter[str] = field(default_factory=Counter)
    """Requests received, by `<model> <route>`."""
    served: Counter[str] = field(default_factory=Counter)
    """Generations answered with 200, by `<model> <route>`."""
    faults: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    """422 validation errors and 429 overload answers, by error type."""
    served_inputs: Counter[str] = field(default_factory=Counter)
    """Successful generations per `<model> <canonical JSON of prompt or messages, seed>`."""
    headers: Counter[str] = field(default_factory=Counter)
    """`Authorization` and `X-*` headers of generation calls, as `name: value` (test use)."""
    max_in_flight: int = 0

    @property
    def total_served(self) -> int:
        return sum(self.served.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "served": dict(self.served),
            "faults": dict(self.faults),
            "rejected": dict(self.rejected),
            "served_inputs": dict(self.served_inputs),
            "headers": dict(self.headers),
            "max_in_flight": self.max_in_flight,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerStats:
        return cls(
            calls=Counter(data["calls"]),
            served=Counter(data["served"]),
            faults=Counter(data["faults"]),
            rejected=Counter(data["rejected"]),
            served_inputs=Counter(data["served_inputs"]),
            headers=Counter(data["headers"]),
            max_in_flight=data["max_in_flight"],
        )


def input_key(source: Any, seed: Any) -> str:
    """How the server names one generation in `ServerStats.served_inputs`."""
    return json.dumps([source, seed], sort_keys=True, separators=(",", ":"))


class _ValidationError(Exception):
    def __init__(self, message: str, status: int = 422, error_type: str = "validation"):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def _error(status: int, message: str, error_type: str) -> web.Response:
    return web.json_response({"error": message, "error_type": error_type}, status=status)


def _validate_sampling(params: dict[str, Any], model: FakeModel) -> None:
    """TGI's router validation (validation.rs) for the parameters we send."""
    temperature = params.get("temperature")
    if temperature is not None and temperature <= 0:
        raise _ValidationError("`temperature` must be strictly positive")
    top_p = params.get("top_p")
    if top_p is not None and not 0 < top_p < 1:
        raise _ValidationError("`top_p` must be > 0.0 and < 1.0")
    top_k = params.get("top_k")
    if top_k is not None and top_k <= 0:
        raise _ValidationError("`top_k` must be strictly positive")
    max_new = params.get("max_new_tokens")
    if max_new is not None and max_new <= 0:
        raise _ValidationError("`max_new_tokens` must be strictly positive")
    stop = params.get("stop") or []
    if len(stop) > model.max_stop_sequences:
        raise _ValidationError(
            f"`stop` supports up to {model.max_stop_sequences} stop sequences. Given: {len(stop)}"
        )
    grammar = params.get("grammar")
    if grammar is not None and grammar.get("type") not in ("json", "regex", "json_schema"):
        raise _ValidationError("grammar type must be json, regex or json_schema")


def _finish(text: str, max_new_tokens: int, stop: list[str]) -> tuple[str, str, int]:
    """Apply TGI's stopping criteria to a full answer: (text, finish_reason, generated_tokens)."""
    ends = [m.end() for m in _TOKEN_RE.finditer(text)]
    hits = [text.find(s) + len(s) for s in stop if s and s in text]
    if hits:
        end = min(hits)
        tokens = sum(1 for e in ends if e < end) + 1
        if tokens <= max_new_tokens:
            return text[:end], "stop_sequence", tokens
    if len(ends) > max_new_tokens:
        return text[: ends[max_new_tokens - 1]], "length", max_new_tokens
    return text, "eos_token", max(len(ends), 1)


def _for_model(handler: Callable[..., Any], name: str) -> Callable[[web.Request], Any]:
    """An aiohttp handler that calls `handler(request, name)`: one route per served model."""
    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request, name)

    return route


class _App:
    """The aiohttp application: routes, validation, faults and counters."""

    def __init__(
        self,
        models: Mapping[str, FakeModel],
        latency_s: float,
        faults: Faults,
    ) -> None:
        self.models = dict(models)
        self.latency_s = latency_s
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.stats = ServerStats()
        self.in_flight: Counter[str] = Counter()
        self.total_in_flight = 0
        self.down: set[str] = set()

    def error(self, status: int, message: str, error_type: str) -> web.Response:
        """An error answer in the protocol's shape (TGI: `{"error", "error_type"}`)."""
        return _error(status, message, error_type)

    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for name in self.models:
            self._routes(app, f"/{name}", name)
        if len(self.models) == 1:
            self._routes(app, "", next(iter(self.models)))
        app.router.add_get("/_stats", self._stats)
        return app

    def _routes(self, app: web.Application, prefix: str, name: str) -> None:
        bind = functools.partial(_for_model, name=name)
        app.router.add_get(f"{prefix}/info", bind(self._info))
        app.router.add_get(f"{prefix}/health", bind(self._health))
        app.router.add_post(f"{prefix}/generate", bind(self._generate))
        app.router.add_post(prefix or "/", bind(self._compat))
        app.router.add_post(f"{prefix}/v1/chat/completions", bind(self._chat))

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_json())

    async def _info(self, request: web.Request, name: str) -> web.Response:
        self.stats.calls[f"{name} /info"] += 1
        if name in self.down:
            return self.error(503, "model is down", "unhealthy")
        return web.json_response(self.models[name].info())

    async def _health(self, request: web.Request, name: str) -> web.Response:
        self.stats.calls[f"{name} /health"] += 1
        if name in self.down:
            return self.error(503, "unhealthy", "healthcheck")
        return web.Response(status=200)

    async def _generate(self, request: web.Request, name: str) -> web.StreamResponse:
        return await self._serve(request, name, "/generate", self._complete)

    async def _compat(self, request: web.Request, name: str) -> web.StreamResponse:
        return await self._serve(request, name, "/", self._complete_compat)

    async def _chat(self, request: web.Request, name: str) -> web.StreamResponse:
        return await self._serve(request, name, "/v1/chat/completions", self._chat_completion)

    async def _serve(
        self,
        request: web.Request,
        name: str,
        route: str,
        answer: Callable[[dict[str, Any], FakeModel, str], tuple[Any, str]],
    ) -> web.StreamResponse:
        label = f"{name} {route}"
        self.stats.calls[label] += 1
        for header, value in request.headers.items():
            if header.lower() == "authorization" or header.lower().startswith("x-"):
                self.stats.headers[f"{header}: {value}"] += 1
        model = self.models[name]
        if name in self.down:
            return self.error(503, "model is down", "unhealthy")
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            return self.error(422, "Failed to deserialize the JSON body", "validation")
        if self.in_flight[name] >= model.max_concurrent_requests:
            self.stats.rejected["overloaded"] += 1
            return self.error(429, "Model is overloaded", "overloaded")
        fault = None
        if self.faults.rate and self.rng.random() < self.faults.rate:
            fault = self.rng.choice(self.faults.kinds)
            self.stats.faults[fault] += 1
        self.in_flight[name] += 1
        self.total_in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.total_in_flight)
        try:
            if fault is not None:
                return await self._fault(request, fault)
            try:
                body, key = answer(payload, model, name)
            except _ValidationError as error:
                self.stats.rejected[error.error_type] += 1
                return self.error(error.status, str(error), error.error_type)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            self.stats.served[label] += 1
            self.stats.served_inputs[f"{name} {key}"] += 1
            return web.json_response(body)
        finally:
            self.in_flight[name] -= 1
            self.total_in_flight -= 1

    async def _fault(self, request: web.Request, fault: str) -> web.StreamResponse:
        if fault == "429":
            return self.error(429, "Model is overloaded", "overloaded")
        if fault == "503":
            return self.error(503, "Service temporarily unavailable", "unavailable")
        if fault == "500":
            return self.error(500, "Incomplete generation", "incomplete_generation")
        if fault == "timeout":
            await asyncio.sleep(self.faults.hang_s)
            return self.error(504, "gateway timeout", "timeout")
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError  # nothing more is sent on a dropped connection

    def _respond(self, kind: str, payload: dict[str, Any], model: FakeModel, name: str) -> str:
        responder = model.responder or default_responder
        return responder(kind, payload, name)

    def _complete(self, payload: dict[str, Any], model: FakeModel, name: str) -> tuple[Any, str]:
        inputs = payload.get("inputs")
        if not isinstance(inputs, str) or not inputs:
            raise _ValidationError("`inputs` cannot be empty")
        params = dict(payload.get("parameters") or {})
        _validate_sampling(params, model)
        prompt_tokens = count_tokens(inputs)
        if prompt_tokens > model.max_input_tokens:
            raise _ValidationError(
                f"`inputs` must have less than {model.max_input_tokens} tokens. "
                f"Given: {prompt_tokens}"
            )
        max_new = params.get("max_new_tokens") or 100
        full = self._respond("generate", payload, model, name)
        text, reason, generated = _finish(full, max_new, list(params.get("stop") or []))
        body: dict[str, Any] = {"generated_text": text}
        if params.get("return_full_text"):
            body["generated_text"] = inputs + text
        if params.get("details", True):
            prefill = []
            if params.get("decoder_input_details"):
                prefill = [
                    {"id": i, "text": tok, "logprob": None if i == 0 else -1.0}
                    for i, tok in enumerate(_TOKEN_RE.findall(inputs))
                ]
            body["details"] = {
                "finish_reason": reason,
                "generated_tokens": generated,
                "seed": params.get("seed"),
                "prefill": prefill,
                "tokens": [],
            }
        return body, input_key(inputs, params.get("seed"))

    def _complete_compat(
        self, payload: dict[str, Any], model: FakeModel, name: str
    ) -> tuple[Any, str]:
        if payload.get("stream"):
            raise _ValidationError("this test server does not stream")
        body, key = self._complete(payload, model, name)
        return [body], key

    def _chat_completion(
        self, payload: dict[str, Any], model: FakeModel, name: str
    ) -> tuple[Any, str]:
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _ValidationError("`messages` cannot be empty")
        if payload.get("stream"):
            raise _ValidationError("this test server does not stream")
        temperature = payload.get("temperature")
        params = {
            "temperature": None if temperature == 0 else temperature,
            "top_p": payload.get("top_p"),
            "max_new_tokens": payload.get("max_tokens"),
            "stop": payload.get("stop"),
            "grammar": payload.get("response_format"),
        }
        _validate_sampling(params, model)
        prompt_tokens = sum(count_tokens(str(m.get("content", ""))) + 4 for m in messages)
        full = self._respond("chat", payload, model, name)
        text, reason, generated = _finish(
            full, payload.get("max_tokens") or 100, list(payload.get("stop") or [])
        )
        body = {
            "id": "",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model.model_id,
            "system_fingerprint": f"3.3.6-test-sha-{model.model_sha}",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "length" if reason == "length" else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": generated,
                "total_tokens": prompt_tokens + generated,
            },
        }
        return body, input_key(messages, payload.get("seed"))


class TGITestServer:
    """The TGI test server on 127.0.0.1, run in a background thread with its own event loop.

    ```python
    with TGITestServer({"alpha": FakeModel("org/alpha")}, faults=Faults(rate=0.2)) as server:
        url = server.url("alpha")
        ...
        assert server.stats.total_served == n
    ```
    """

    def __init__(
        self,
        models: Mapping[str, FakeModel] | None = None,
        *,
        latency_s: float = 0.0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._app = self.make_app(
            models or {"default": FakeModel("test/default")}, latency_s, faults or Faults()
        )
        self.host = host
        self.port = port
        self._serving = LoopThread("tgi-test-server")

    def make_app(
        self, models: Mapping[str, FakeModel], latency_s: float, faults: Faults
    ) -> _App:
        return _App(models, latency_s, faults)

    @property
    def stats(self) -> ServerStats:
        return self._app.stats

    @property
    def models(self) -> dict[str, FakeModel]:
        return self._app.models

    def url(self, name: str | None = None) -> str:
        """Base URL of one model (the only model when `name` is None and there is one)."""
        base = f"http://{self.host}:{self.port}"
        if name is None:
            if len(self._app.models) != 1:
                raise ValueError(f"name one of {sorted(self._app.models)}")
            return base
        if name not in self._app.models:
            raise KeyError(f"no model {name!r}; served: {sorted(self._app.models)}")
        return f"{base}/{name}"

    def set_faults(self, faults: Faults) -> None:
        self._app.faults = faults
        self._app.rng = random.Random(faults.seed)

    def set_down(self, name: str, down: bool = True) -> None:
        """Make one model answer 503 to everything (an endpoint that stays down)."""
        (self._app.down.add if down else self._app.down.discard)(name)

    def reset_stats(self) -> None:
        self._app.stats = ServerStats()

    def start(self) -> TGITestServer:
        async def setup() -> Any:
            runner = web.AppRunner(self._app.build(), access_log=None, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port, backlog=1024)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return runner.cleanup

        self._serving.start(setup)
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> TGITestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """A test server in its own process (see `spawn_server`); `stats()` asks it over HTTP."""

    def __init__(self, process: subprocess.Popen[str], base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    def url(self, name: str | None = None) -> str:
        return self.base_url if name is None else f"{self.base_url}/{name}"

    def stats(self) -> ServerStats:
        with urllib.request.urlopen(f"{self.base_url}/_stats", timeout=30) as response:
            return ServerStats.from_json(json.load(response))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_server(
    models: Mapping[str, str] | None = None,
    *,
    latency_s: float = 0.0,
    max_concurrency: int = 128,
    max_stop_sequences: int = 4,
    fault_rate: float = 0.0,
    responder: str | None = None,
) -> ServerProcess:
    """Start the server in a new process; `models` maps path name to model id."""
    command = [
        sys.executable,
        "-m",
        "tests.support.tgi_server",
        "--latency",
        str(latency_s),
        "--max-concurrency",
        str(max_concurrency),
        "--max-stop-sequences",
        str(max_stop_sequences),
        "--fault-rate",
        str(fault_rate),
    ]
    for name, model_id in (models or {"default": "test/default"}).items():
        command += ["--model", f"{name}={model_id}"]
    if responder:
        command += ["--responder", responder]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the TGI test server did not start: {line!r}")
    return ServerProcess(process, line.split(" ", 1)[1])


def _load_responder(spec: str) -> Responder:
    module, _, name = spec.partition(":")
    if not name:
        raise SystemExit(f"--responder takes module:function, got {spec!r}")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per generation")
    parser.add_argument("--max-concurrency", type=int, default=128)
    parser.add_argument("--max-stop-sequences", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--model", action="append", default=[], help="name=model_id")
    parser.add_argument("--responder", help="module:function, a Responder for every model")
    args = parser.parse_args(argv)
    responder = _load_responder(args.responder) if args.responder else None
    models = {}
    for spec in args.model or ["default=test/default"]:
        name, _, model_id = spec.partition("=")
        models[name] = FakeModel(
            model_id or name,
            responder=responder,
            max_concurrent_requests=args.max_concurrency,
            max_stop_sequences=args.max_stop_sequences,
        )
    server = TGITestServer(
        models, latency_s=args.latency, faults=Faults(rate=args.fault_rate), port=args.port
    )
    server.start()
    print(f"READY http://{server.host}:{server.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
