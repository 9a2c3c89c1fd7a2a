"""The TGI backend on aiohttp: `/info`, `/generate` and `/v1/chat/completions` with TGI's rules.

It speaks the protocol `huggingface_hub.AsyncInferenceClient` speaks, without its per-call
client cost (benchmarks/generation_throughput.py measures both clients; the README holds the
figures). AsyncInferenceClient also refuses every URL, a local TGI included, when
`HF_HUB_OFFLINE=1`, and sends the user's saved Hub token to any URL when no token is given;
here only the expert's `token_env` is sent, and only to its own URLs.

TGI's rules: `top_p` must be in (0, 1), so 1.0 is sent as "not set"; temperature 0 means greedy
(`do_sample` false); at most `max_stop_sequences` stop strings go to the server and every stop
string is applied to the text here (it is cut before the earliest one); 429 means overloaded.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from warriorcoder.generation.http import Endpoint, HTTPBackend, http_json
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    ExpertInfo,
    FinishReason,
    GenerationResult,
    Request,
    revision_from,
)
from warriorcoder.generation.wire import CallError, chat_result, cut_at_stops


def expert_info(name: str, info: dict[str, Any], max_concurrency: int | None,
                revision: str | None = None) -> ExpertInfo:
    """`ExpertInfo` from a TGI `/info` payload (`model_sha` is the revision, else `revision`)."""
    model_revision, source = revision_from(str(info.get("model_sha") or ""), revision)
    return ExpertInfo(
        name=name,
        model_id=str(info["model_id"]),
        model_revision=model_revision,
        revision_source=source,
        max_stop_sequences=int(info.get("max_stop_sequences") or 4),
        max_concurrent_requests=int(max_concurrency or info.get("max_concurrent_requests") or 128),
        max_input_tokens=info.get("max_input_tokens") or info.get("max_input_length"),
        max_total_tokens=info.get("max_total_tokens"),
    )


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


class TGIBackend(HTTPBackend):
    """An expert on one or more TGI servers."""

    kind = "tgi"

    async def fetch_identity(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        info = await http_json(session, "GET", f"{url}/info", self.headers, self.timeout)
        if not isinstance(info, dict) or "model_id" not in info:
            raise CallError(f"{url}/info is not a TGI /info answer", retryable=False)
        return info

    def info_from(self, payload: dict[str, Any]) -> ExpertInfo:
        return expert_info(self.name, payload, self.expert.max_concurrency, self.expert.revision)

    def identity(self, payload: dict[str, Any]) -> tuple[Any, ...]:
        return (payload["model_id"], payload.get("model_sha"))

    async def attempt(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, request: Request
    ) -> GenerationResult:
        assert self._info is not None
        max_stop = self._info.max_stop_sequences
        if isinstance(request, CompletionRequest):
            body = await http_json(
                session, "POST", f"{endpoint.url}/generate", self.headers, self.timeout,
                generate_body(request, max_stop),
            )
            return self._completion_result(request, body)
        body = await http_json(
            session, "POST", f"{endpoint.url}/v1/chat/completions", self.headers, self.timeout,
            chat_body(request, max_stop),
        )
        return chat_result(body, request, self._info)

    def _completion_result(self, request: CompletionRequest, body: Any) -> GenerationResult:
        assert self._info is not None
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
        count = self.prompt_counter()
        if prefill:
            prompt_tokens = len(prefill)
        elif count is not None:
            prompt_tokens = count(request.prompt)
        else:
            prompt_tokens = 0
        return GenerationResult(
            text=text,
            finish_reason=reason,
            generated_tokens=int(details.get("generated_tokens") or 0),
            prompt_tokens=prompt_tokens,
            model_id=self._info.model_id,
            model_revision=self._info.model_revision,
        )
