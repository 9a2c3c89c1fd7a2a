"""The request and result types every phase uses to talk to experts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["length", "eos_token", "stop_sequence", "error"]
RevisionSource = Literal["server", "config", "weights", "unknown"]
"""Where an expert's model revision came from: the server (TGI `/info` `model_sha`, or an
OpenAI-compatible server's model card), the config (`revision:`), a hash of the local weights,
or nowhere (the revision is then empty)."""


def revision_from(reported: str, configured: str | None) -> tuple[str, RevisionSource]:
    """The revision a server reports, else the config's `revision:`, and which one it is."""
    if reported:
        return reported, "server"
    if configured:
        return configured, "config"
    return "", "unknown"


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters of one call. `top_p` 1.0 means "not set" (TGI rejects 1.0)."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    grammar: dict[str, Any] | None = None
    """Guided decoding, e.g. `{"type": "regex", "value": "..."}` (TGI's shape; each backend
    sends it in its server's own field, see `generation.guided`)."""


@dataclass(frozen=True)
class CompletionRequest:
    """Raw completion of `prompt` (TGI `/generate`); mining uses it with the pre-query prefix.

    As on TGI, the backend adds the tokenizer's special tokens (the BOS) to `prompt`, so a
    prompt rendered from a chat template is sent without its BOS (`PreQuery.prompt_without_bos`).
    """

    expert: str
    prompt: str
    params: SamplingParams


@dataclass(frozen=True)
class ChatRequest:
    """Chat completion (TGI `/v1/chat/completions`); answering and judging use it."""

    expert: str
    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs."""
    params: SamplingParams

    @classmethod
    def user(cls, expert: str, content: str, params: SamplingParams) -> ChatRequest:
        return cls(expert=expert, messages=(("user", content),), params=params)


Request = CompletionRequest | ChatRequest


@dataclass(frozen=True)
class GenerationResult:
    """What one call returned, with the model identity the server reported."""

    text: str
    finish_reason: FinishReason
    generated_tokens: int
    prompt_tokens: int
    model_id: str
    model_revision: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, error: str, model_id: str, model_revision: str = "") -> GenerationResult:
        """The result of a call that failed for good (the one place such results are made)."""
        return cls(
            text="",
            finish_reason="error",
            generated_tokens=0,
            prompt_tokens=0,
            model_id=model_id,
            model_revision=model_revision,
            error=error,
        )


@dataclass(frozen=True)
class ExpertInfo:
    """Identity and limits of an expert's server (TGI `/info`, `/v1/models`) or local model."""

    name: str
    model_id: str
    model_revision: str
    revision_source: RevisionSource = "server"
    """Where `model_revision` came from (cards print it next to the revision)."""
    max_stop_sequences: int = 4
    max_concurrent_requests: int = 128
    max_input_tokens: int | None = None
    max_total_tokens: int | None = None


@dataclass
class TokenUsage:
    """Tokens counted per expert."""

    requests: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    failures: int = 0
    cached: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PreQuery:
    """The mining prompt of one expert: its chat template rendered up to where the user's text
    starts, and the strings that end the user turn (stop strings for the completion).

    `prefix` is the template's text verbatim, so it starts with `bos_token` when the template
    writes one (Llama 3, DeepSeek); a server whose tokenizer adds the BOS itself then sees it
    twice, and `prompt_without_bos` is the prefix without it."""

    prefix: str
    stop: tuple[str, ...]
    system_prompt: str | None = None
    """The system prompt in the prefix (None where the template takes no system turn)."""
    bos_token: str | None = None
    """The BOS text the prefix starts with, if any."""

    @property
    def prompt_without_bos(self) -> str:
        return _without_bos(self.prefix, self.bos_token)


@dataclass(frozen=True)
class ReplyFormat:
    """One expert's chat template around a single user turn: the text before the user's
    message, the text after it up to where the assistant's reply begins, and the strings that
    end the reply. A completion of `prompt(user, reply_start)` is the expert's reply to `user`
    begun with `reply_start` (an assistant prefill, on any server with a raw completion route).
    """

    before_user: str
    after_user: str
    stop: tuple[str, ...]
    bos_token: str | None = None
    """The BOS text the template writes first, if any (left out of `prompt`: servers add it)."""

    def prompt(self, user: str, reply_start: str = "") -> str:
        return _without_bos(self.before_user + user + self.after_user + reply_start,
                            self.bos_token)


def _without_bos(text: str, bos_token: str | None) -> str:
    """`text` without the BOS it starts with, if any (servers add their own)."""
    if bos_token and text.startswith(bos_token):
        return text[len(bos_token) :]
    return text
