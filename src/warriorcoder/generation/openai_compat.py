"""The OpenAI-compatible backend on aiohttp: vLLM, SGLang, llama.cpp's server, TGI's `/v1`.

- `GET /v1/models` identifies the server; the `model` sent is `served_model`, else the one
  model it lists (or `model_id` among several).
- A `CompletionRequest` (mining, any rendered template) goes to `/v1/completions` with the raw
  prompt; a `ChatRequest` to `/v1/chat/completions`. As on TGI's `/generate`, these servers
  tokenize a raw prompt with the tokenizer's special tokens (the BOS).
- Sampling maps field by field: `max_tokens`, `temperature` (0 is greedy), `top_p` (1.0, every
  server's default, is left out: TGI's `/v1` routes answer `top_p: 1.0` with a 422, as its
  `/generate` does), `seed`, `stop` (at most 4 are sent, as OpenAI's API allows; every stop
  string is also applied to the text here). The journal keys the request's `SamplingParams`,
  not this body.
- Finish reasons: `length` stays `length`; `stop` is `stop_sequence` when a stop string was
  met (vLLM's `stop_reason`, or found in the text) and `eos_token` otherwise. Token counts come
  from `usage`.
- The model revision: a `revision` (or `model_sha`) in the server's model card, else the
  config's `revision`, else unknown; `ExpertInfo.revision_source` says which.
- No `/info` tells the concurrency: `max_concurrency` per URL, default 16.
- Regex constraints go in the server's own field (`guided_decoding`, see `guided.py`).
Retries, backoff on 429/5xx, routing over URLs and the bearer token are `http.HTTPBackend`'s.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.errors import ConfigError
from warriorcoder.generation.guided import guided_fields
from warriorcoder.generation.http import Endpoint, HTTPBackend, http_json
from warriorcoder.generation.journal import Journal
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    ExpertInfo,
    GenerationResult,
    Request,
    revision_from,
)
from warriorcoder.generation.wire import CallError, chat_result, openai_choice_result

DEFAULT_CONCURRENCY = 16
"""Requests in flight per URL when `max_concurrency` is not set."""
MAX_STOP_SENT = 4


class OpenAIBackend(HTTPBackend):
    """An expert on one or more OpenAI-compatible servers."""

    kind = "openai"

    def __init__(self, expert: ExpertConfig, generation: GenerationConfig, journal: Journal):
        super().__init__(expert, generation, journal)
        self.expert = expert.model_copy(
            update={"urls": [url.removesuffix("/v1") for url in expert.urls]}
        )
        self.served_model: str | None = expert.served_model

    def cache_key(self, url: str) -> str:
        return f"{url}/v1/models"

    async def fetch_identity(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        models = await http_json(session, "GET", f"{url}/v1/models", self.headers, self.timeout)
        if not isinstance(models, dict) or not isinstance(models.get("data"), list):
            raise CallError(f"{url}/v1/models is not an OpenAI model list", retryable=False)
        return models

    def _card(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(the served model name, its card in `/v1/models`)."""
        cards = {str(m.get("id")): m for m in payload.get("data") or [] if isinstance(m, dict)}
        if self.expert.served_model:
            name = self.expert.served_model
            return name, cards.get(name, {})
        if self.expert.model_id in cards:
            return self.expert.model_id, cards[self.expert.model_id]
        if len(cards) == 1:
            return next(iter(cards.items()))
        raise ConfigError(
            f"expert {self.name!r}: the server lists the models {sorted(cards)}; set "
            "`served_model` to the one to ask"
        )

    def info_from(self, payload: dict[str, Any]) -> ExpertInfo:
        served, card = self._card(payload)
        self.served_model = served
        revision, source = revision_from(str(card.get("revision") or card.get("model_sha") or ""),
                                         self.expert.revision)
        return ExpertInfo(
            name=self.name,
            model_id=self.expert.model_id,
            model_revision=revision,
            revision_source=source,
            max_stop_sequences=MAX_STOP_SENT,
            max_concurrent_requests=self.expert.max_concurrency or DEFAULT_CONCURRENCY,
            max_input_tokens=None,
            max_total_tokens=card.get("max_model_len"),
        )

    def identity(self, payload: dict[str, Any]) -> tuple[Any, ...]:
        info = self.info_from(payload)
        return (self.served_model, info.model_revision)

    def body(self, request: Request) -> dict[str, Any]:
        """The JSON body of one request (`/v1/completions` or `/v1/chat/completions`)."""
        p = request.params
        body: dict[str, Any] = {"model": self.served_model}
        if isinstance(request, CompletionRequest):
            body["prompt"] = request.prompt
        else:
            body["messages"] = [{"role": r, "content": c} for r, c in request.messages]
        body.update(max_tokens=p.max_new_tokens, temperature=p.temperature)
        if p.top_p < 1.0:  # 1.0 is the default everywhere, and TGI's /v1 routes refuse it
            body["top_p"] = p.top_p
        body.update(seed=p.seed, n=1, stream=False)
        if p.stop:
            body["stop"] = list(p.stop[:MAX_STOP_SENT])
        if p.grammar is not None:
            body.update(
                guided_fields(self.expert, p.grammar, chat=isinstance(request, ChatRequest))
            )
        return body

    async def attempt(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, request: Request
    ) -> GenerationResult:
        assert self._info is not None
        route = "completions" if isinstance(request, CompletionRequest) else "chat/completions"
        answer = await http_json(
            session, "POST", f"{endpoint.url}/v1/{route}", self.headers, self.timeout,
            json.dumps(self.body(request)).encode(),
        )
        if isinstance(request, ChatRequest):
            return chat_result(answer, request, self._info)
        return self._completion_result(answer, request)

    def _completion_result(self, body: Any, request: CompletionRequest) -> GenerationResult:
        assert self._info is not None
        try:
            choice = body["choices"][0]
            text = choice["text"]
            usage = body.get("usage") or {}
        except (KeyError, IndexError, TypeError):
            raise CallError(f"unexpected completion answer: {str(body)[:200]}", True) from None
        return openai_choice_result(choice, text or "", usage, request, self._info)
