"""What the HTTP wires (TGI, OpenAI-compatible) and the local backend share: the failure of one
attempt, stop strings applied client-side, OpenAI-style chat answers, and how a down expert is
described."""

from __future__ import annotations

from typing import Any

from warriorcoder.generation.types import (
    ChatRequest,
    ExpertInfo,
    FinishReason,
    GenerationResult,
    Request,
)


class CallError(Exception):
    """One failed attempt; `retryable` for 429, 5xx, timeouts and connection errors."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def cut_at_stops(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    cut = -1
    for stop in stops:
        if stop:
            pos = text.find(stop)
            if pos >= 0 and (cut < 0 or pos < cut):
                cut = pos
    return (text, False) if cut < 0 else (text[:cut], True)


def describe_down(down: dict[str, str]) -> str:
    """`url (last error); ...` for the URLs of an expert that are down."""
    return "; ".join(f"{url} ({error})" for url, error in down.items())


CHAT_FINISH: dict[str, FinishReason] = {
    "length": "length",
    "stop": "eos_token",
    "eos_token": "eos_token",
    "stop_sequence": "stop_sequence",
}
"""OpenAI-style finish reasons (TGI's chat route, OpenAI-compatible servers) as ours."""


def chat_result(body: Any, request: ChatRequest, info: ExpertInfo) -> GenerationResult:
    """A `/v1/chat/completions` answer as a result (stop strings applied here too)."""
    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        usage = body.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        raise CallError(f"unexpected chat answer: {str(body)[:200]}", True) from None
    return openai_choice_result(choice, text, usage, request, info)


def openai_choice_result(choice: dict[str, Any], text: str, usage: dict[str, Any],
                         request: Request, info: ExpertInfo) -> GenerationResult:
    """An OpenAI-style choice (chat or completion) as a result: its finish reason, the stop
    strings applied here too, and the usage counts."""
    reason = CHAT_FINISH.get(choice.get("finish_reason") or "stop", "eos_token")
    if isinstance(choice.get("stop_reason"), str):  # vLLM names the stop string it met
        reason = "stop_sequence"
    text, cut = cut_at_stops(text, request.params.stop)
    if cut:
        reason = "stop_sequence"
    return GenerationResult(
        text=text,
        finish_reason=reason,
        generated_tokens=int(usage.get("completion_tokens") or 0),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        model_id=info.model_id,
        model_revision=info.model_revision,
    )
