"""An OpenAI-compatible protocol test server (the shape vLLM, SGLang and llama.cpp serve).

Routes: `GET /v1/models`, `POST /v1/completions` (raw prompt), `POST /v1/chat/completions`,
each under `/<name>` per fake model, and at the root, where the `model` field picks the model
(an unknown one is a 404 `model_not_found`, as OpenAI and vLLM answer). Errors have OpenAI's
shape, `{"error": {"message", "type", "param", "code"}}`: 400 `invalid_request_error` for bad
sampling values, more than 4 stop strings, a prompt past the context, and any field outside
the OpenAI API and the server's own guided-decoding field (`flavor`: "vllm" accepts
`structured_outputs`, "vllm-legacy" `guided_regex`, "sglang" `regex`, "llama.cpp" `grammar`
and `json_schema`, None none), so a request sent in another server's dialect is refused rather
than silently unconstrained. 429 `rate_limit_error` past a model's `max_concurrent_requests`.

`tgi_rules=True` serves the `/v1` routes as text-generation-inference does: it validates them
with the rules of `/generate` (`top_p` must be > 0.0 and < 1.0, at most the model's
`max_stop_sequences` stop strings) and answers a violation with TGI's 422
`{"error", "error_type": "validation"}`, so a client that sends OpenAI's default `top_p: 1.0`
fails here as it does against a real TGI.

Answers come from the same `Responder`s as the TGI test server (`tgi_server.FakeModel`), which
are given a TGI-shaped view of the request (`inputs`, `parameters.seed`, `parameters.stop`,
`messages`), so the simulators work on both. As OpenAI-compatible servers do, a matched stop
string is not part of the returned text, and `usage` holds the token counts. The server never
reports a model revision unless `report_revision` (then the card carries `revision`).
Faults, latency, down models and the counters are `tgi_server`'s.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from tests.support.tgi_server import (
    FakeModel,
    Faults,
    TGITestServer,
    _App,
    _finish,
    _for_model,
    _ValidationError,
    count_tokens,
    input_key,
)

STANDARD_FIELDS = {
    "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "n", "stream", "stop", "seed", "presence_penalty", "frequency_penalty",
    "logit_bias", "logprobs", "top_logprobs", "user", "echo", "suffix", "best_of",
    "response_format",
}
GUIDED_FIELDS = {
    "vllm": {"structured_outputs"},
    "vllm-legacy": {"guided_regex", "guided_json"},
    "sglang": {"regex", "json_schema"},
    "llama.cpp": {"grammar", "json_schema"},
    None: set(),
}


class _OpenAIApp(_App):
    """OpenAI routes on the TGI test server's machinery (faults, counters, latency)."""

    def __init__(self, models: Mapping[str, FakeModel], latency_s: float, faults: Faults,
                 flavor: str | None, report_revision: bool, tgi_rules: bool = False) -> None:
        super().__init__(models, latency_s, faults)
        self.flavor = flavor
        self.report_revision = report_revision
        self.tgi_rules = tgi_rules
        self.constraints: list[dict[str, Any]] = []
        """The guided-decoding fields of every accepted request, in arrival order."""
        self.bodies: list[dict[str, Any]] = []
        """Every generation request body received, in arrival order."""

    def error(self, status: int, message: str, error_type: str) -> web.Response:
        if self.tgi_rules:  # TGI answers its /v1 routes in its own error shape
            return super().error(status, message, error_type)
        kind = {429: "rate_limit_error", 404: "invalid_request_error"}.get(status, error_type)
        if status >= 500:
            kind = "server_error"
        body = {"error": {"message": message, "type": kind, "param": None,
                          "code": "model_not_found" if status == 404 else None}}
        return web.json_response(body, status=status)

    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for name in self.models:
            self._routes(app, f"/{name}", name)
        app.router.add_get("/v1/models", self._root_models)
        app.router.add_post("/v1/completions", self._by_model("/v1/completions"))
        app.router.add_post("/v1/chat/completions", self._by_model("/v1/chat/completions"))
        app.router.add_get("/_stats", self._stats)
        return app

    def _routes(self, app: web.Application, prefix: str, name: str) -> None:
        bind = functools.partial(_for_model, name=name)
        app.router.add_get(f"{prefix}/v1/models", bind(self._models))
        app.router.add_post(f"{prefix}/v1/completions", bind(self._completions))
        app.router.add_post(f"{prefix}/v1/chat/completions", bind(self._chats))

    def _card(self, name: str) -> dict[str, Any]:
        model = self.models[name]
        card = {"id": model.model_id, "object": "model", "created": 1735142223,
                "owned_by": "openai-test-server", "max_model_len": model.max_total_tokens}
        if self.report_revision:
            card["revision"] = model.model_sha
        return card

    async def _models(self, request: web.Request, name: str) -> web.Response:
        self.stats.calls[f"{name} /v1/models"] += 1
        if name in self.down:
            return self.error(503, "model is down", "server_error")
        return web.json_response({"object": "list", "data": [self._card(name)]})

    async def _root_models(self, request: web.Request) -> web.Response:
        self.stats.calls["* /v1/models"] += 1
        cards = [self._card(name) for name in self.models if name not in self.down]
        return web.json_response({"object": "list", "data": cards})

    def _by_model(self, route: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                payload = await request.json()
            except json.JSONDecodeError:
                return self.error(400, "We could not parse the JSON body", "invalid_request_error")
            ids = {model.model_id: name for name, model in self.models.items()}
            name = ids.get(payload.get("model")) if isinstance(payload, dict) else None
            if name is None:
                return self.error(404, f"The model `{payload.get('model')}` does not exist.",
                                  "invalid_request_error")
            answer = self._complete_openai if route == "/v1/completions" else self._chat_openai
            return await self._serve(request, name, route, answer)

        return handler

    async def _completions(self, request: web.Request, name: str) -> web.StreamResponse:
        return await self._serve(request, name, "/v1/completions", self._complete_openai)

    async def _chats(self, request: web.Request, name: str) -> web.StreamResponse:
        return await self._serve(request, name, "/v1/chat/completions", self._chat_openai)

    # -- validation and answers ------------------------------------------------------------

    def _validate(self, payload: dict[str, Any], model: FakeModel) -> None:
        extra = set(payload) - STANDARD_FIELDS - GUIDED_FIELDS[self.flavor]
        if extra:
            raise _ValidationError(
                f"Unrecognized request argument supplied: {', '.join(sorted(extra))}", 400,
                "invalid_request_error")
        if payload.get("model") not in (model.model_id, None):
            raise _ValidationError(f"The model `{payload.get('model')}` does not exist.", 404,
                                   "invalid_request_error")
        if self.tgi_rules:
            self._validate_as_tgi(payload, model)
        temperature = payload.get("temperature", 1.0)
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            raise _ValidationError("temperature must be in [0, 2]", 400, "invalid_request_error")
        top_p = payload.get("top_p", 1.0)
        if not isinstance(top_p, int | float) or not 0 < top_p <= 1:
            raise _ValidationError("top_p must be in (0, 1]", 400, "invalid_request_error")
        max_tokens = payload.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise _ValidationError("max_tokens must be at least 1", 400, "invalid_request_error")
        stop = payload.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        if len(stop) > 4:
            raise _ValidationError("stop: at most 4 sequences", 400, "invalid_request_error")
        if payload.get("n", 1) != 1 or payload.get("stream"):
            raise _ValidationError("this test server answers n=1 without streaming", 400,
                                   "invalid_request_error")
        guided = {k: payload[k] for k in GUIDED_FIELDS[self.flavor] if k in payload}
        if guided:
            self.constraints.append(guided)

    @staticmethod
    def _validate_as_tgi(payload: dict[str, Any], model: FakeModel) -> None:
        """TGI's router validation of `/generate`, which its `/v1` routes go through too."""
        top_p = payload.get("top_p")
        if top_p is not None and not 0 < top_p < 1:
            raise _ValidationError("Input validation error: `top_p` must be > 0.0 and < 1.0")
        stop = payload.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if len(stop) > model.max_stop_sequences:
            raise _ValidationError(
                f"Input validation error: `stop` supports up to {model.max_stop_sequences} "
                f"stop sequences. Given: {len(stop)}")

    def _view(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The TGI-shaped payload the responders read."""
        stop = payload.get("stop") or []
        params = {"seed": payload.get("seed"), "stop": [stop] if isinstance(stop, str) else stop,
                  "max_new_tokens": payload.get("max_tokens", 16)}
        if kind == "generate":
            return {"inputs": payload.get("prompt"), "parameters": params}
        return {"messages": payload.get("messages"), "seed": payload.get("seed"),
                **{k: v for k, v in params.items() if k != "seed"}}

    def _generate(self, kind: str, payload: dict[str, Any], model: FakeModel, name: str,
                  prompt_tokens: int) -> tuple[str, str, dict[str, int]]:
        self.bodies.append(payload)
        full = self._respond(kind, self._view(kind, payload), model, name)
        stop = payload.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        text, reason, generated = _finish(full, payload.get("max_tokens", 16), stop)
        if reason == "stop_sequence":  # OpenAI-compatible servers leave the stop string out
            text = text[: min(text.find(s) for s in stop if s and s in text)]
        finish = "length" if reason == "length" else "stop"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": generated,
                 "total_tokens": prompt_tokens + generated}
        return text, finish, usage

    def _complete_openai(self, payload: dict[str, Any], model: FakeModel,
                         name: str) -> tuple[Any, str]:
        prompt = payload.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _ValidationError("prompt must be a non-empty string", 400,
                                   "invalid_request_error")
        self._validate(payload, model)
        prompt_tokens = count_tokens(prompt)
        if prompt_tokens + payload.get("max_tokens", 16) > model.max_total_tokens:
            raise _ValidationError(
                f"This model's maximum context length is {model.max_total_tokens} tokens; "
                f"the prompt has {prompt_tokens}", 400, "invalid_request_error")
        text, finish, usage = self._generate("generate", payload, model, name, prompt_tokens)
        body = {"id": "cmpl-test", "object": "text_completion", "created": int(time.time()),
                "model": model.model_id,
                "choices": [{"index": 0, "text": text, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage}
        return body, input_key(prompt, payload.get("seed"))

    def _chat_openai(self, payload: dict[str, Any], model: FakeModel,
                     name: str) -> tuple[Any, str]:
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _ValidationError("messages must be a non-empty list", 400,
                                   "invalid_request_error")
        self._validate(payload, model)
        prompt_tokens = sum(count_tokens(str(m.get("content", ""))) + 4 for m in messages)
        text, finish, usage = self._generate("chat", payload, model, name, prompt_tokens)
        body = {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": model.model_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": finish}],
                "usage": usage}
        return body, input_key(messages, payload.get("seed"))


class OpenAITestServer(TGITestServer):
    """The OpenAI-compatible test server on 127.0.0.1, in a background thread.

    ```python
    with OpenAITestServer({"alpha": FakeModel("org/alpha")}, flavor="vllm") as server:
        url = server.url("alpha")          # or server.base for model-by-name routing
        ...
    ```
    """

    def __init__(self, models: Mapping[str, FakeModel] | None = None, *,
                 flavor: str | None = None, report_revision: bool = False,
                 tgi_rules: bool = False, **options: Any) -> None:
        if flavor not in GUIDED_FIELDS:
            raise ValueError(f"flavor must be one of {sorted(map(str, GUIDED_FIELDS))}")
        self._flavor = flavor
        self._report_revision = report_revision
        self._tgi_rules = tgi_rules
        super().__init__(models, **options)

    def make_app(self, models: Mapping[str, FakeModel], latency_s: float,
                 faults: Faults) -> _App:
        return _OpenAIApp(models, latency_s, faults, self._flavor, self._report_revision,
                          self._tgi_rules)

    @property
    def base(self) -> str:
        """The root URL, where the `model` field chooses the model."""
        return f"http://{self.host}:{self.port}"

    @property
    def constraints(self) -> list[dict[str, Any]]:
        return self._app.constraints  # type: ignore[attr-defined]

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self._app.bodies  # type: ignore[attr-defined]

    def url(self, name: str | None = None) -> str:
        if name is None:
            return self.base
        return super().url(name)
