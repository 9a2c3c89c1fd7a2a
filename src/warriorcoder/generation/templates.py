"""Pre-query prefixes for mining, derived from an expert's own tokenizer chat template.

The template renders a conversation whose user message is a sentinel; the text before the
sentinel is the prefix (Magpie), the text after it, up to the assistant's turn, gives the
strings that end a user turn. The mining system prompt is used only where the template takes a
system turn: rendering with it must not raise and must contain its text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from warriorcoder.config import ExpertConfig
from warriorcoder.errors import ModelLoadError, TemplateError
from warriorcoder.generation.types import PreQuery, ReplyFormat

logger = logging.getLogger(__name__)

USER_SENTINEL = "WARRIORCODER_USER_TURN_SENTINEL_5b1f"
"""Stands in for the user's text while rendering; plain ASCII so no template alters it."""
REPLY_SENTINEL = "WARRIORCODER_REPLY_SENTINEL_9c2e"
"""Stands in for the assistant's reply while rendering."""


__all__ = ["USER_SENTINEL", "ChatTemplate", "TemplateError", "load_tokenizer", "template_for"]


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template with the special tokens it may refer to (`bos_token`, ...)."""

    source: str
    special_tokens: Mapping[str, str] = field(default_factory=dict)
    origin: str = "chat template"
    """Where it came from, for error messages."""

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, override: str | None = None) -> ChatTemplate:
        """The tokenizer's template (or `override`) with the tokenizer's special tokens."""
        source = override or tokenizer.chat_template
        origin = f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!s}"
        if not source:
            raise TemplateError(f"{origin} has no chat_template; set `chat_template` for it")
        if isinstance(source, dict):
            source = source.get("default") or next(iter(source.values()))
        tokens = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        return cls(
            source, tokens, origin if override is None else f"chat_template override ({origin})"
        )

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered, _ = render_jinja_template(
            conversations=[[dict(m) for m in messages]],
            chat_template=self.source,
            add_generation_prompt=add_generation_prompt,
            **self.special_tokens,
        )
        return rendered[0]

    def takes_system_turn(self, system_prompt: str) -> bool:
        """Whether rendering with this system prompt works and shows its text."""
        try:
            text = self.render(_conversation(system_prompt), add_generation_prompt=False)
        except Exception as error:  # templates raise_exception() on a system role they refuse
            logger.debug("%s refuses a system turn: %s", self.origin, error)
            return False
        return system_prompt in text

    def pre_query(self, system_prompt: str | None) -> PreQuery:
        """The prefix up to the user's text and the strings that end the user turn."""
        system = system_prompt if system_prompt and self.takes_system_turn(system_prompt) else None
        messages = _conversation(system)
        try:
            closed = self.render(messages, add_generation_prompt=False)
            opened = self.render(messages, add_generation_prompt=True)
        except Exception as error:
            raise TemplateError(f"{self.origin} fails to render a user turn: {error}") from error
        if closed.count(USER_SENTINEL) != 1 or USER_SENTINEL not in opened:
            raise TemplateError(
                f"{self.origin} does not render the user's message verbatim once, so no "
                "pre-query prefix can be cut from it; set `chat_template` for this expert"
            )
        cut = closed.index(USER_SENTINEL)
        prefix = closed[:cut]
        end_of_turn = closed[cut + len(USER_SENTINEL) :]
        next_turn = opened[opened.index(USER_SENTINEL) + len(USER_SENTINEL) :]
        stops = _stop_strings(end_of_turn, next_turn, self.special_tokens.get("eos_token"))
        bos = self.special_tokens.get("bos_token")
        return PreQuery(
            prefix=prefix,
            stop=stops,
            system_prompt=system,
            bos_token=bos if bos and prefix.startswith(bos) else None,
        )

    def reply_format(self) -> ReplyFormat:
        """The template around one user turn and the assistant's reply to it (no system turn
        beyond what the template itself adds). Raises `TemplateError` when the user's message
        or the reply does not render verbatim once."""
        user = {"role": "user", "content": USER_SENTINEL}
        try:
            opened = self.render([user], add_generation_prompt=True)
            answered = self.render([user, {"role": "assistant", "content": REPLY_SENTINEL}],
                                   add_generation_prompt=False)
        except Exception as error:
            raise TemplateError(f"{self.origin} fails to render a user turn and a reply: "
                                f"{error}") from error
        if opened.count(USER_SENTINEL) != 1 or answered.count(REPLY_SENTINEL) != 1:
            raise TemplateError(
                f"{self.origin} does not render a user message and a reply verbatim once, so "
                "no reply can be prefilled; set `chat_template` for this expert"
            )
        cut = opened.index(USER_SENTINEL)
        end_of_reply = answered[answered.index(REPLY_SENTINEL) + len(REPLY_SENTINEL):]
        stops = _stop_strings(end_of_reply, "", self.special_tokens.get("eos_token"))
        bos = self.special_tokens.get("bos_token")
        return ReplyFormat(opened[:cut], opened[cut + len(USER_SENTINEL):], stops,
                           bos if bos and opened.startswith(bos) else None)


def _conversation(system_prompt: str | None) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": USER_SENTINEL}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _stop_strings(end_of_turn: str, next_turn: str, eos: str | None) -> tuple[str, ...]:
    """Stops for a user turn: its closing text (`<|im_end|>`), or, where that is only
    whitespace (DeepSeek's "\\n\\n"), the start of the assistant turn ("\\n\\nAssistant:");
    plus the tokenizer's EOS. A stop that contains another is dropped (the other fires first)."""
    candidates = [end_of_turn.strip() or next_turn.rstrip(), eos or ""]
    stops: list[str] = []
    for stop in candidates:
        if stop and stop not in stops:
            stops.append(stop)
    return tuple(s for s in stops if not any(o != s and o in s for o in stops))


def load_tokenizer(source: str, gguf_file: str | None = None) -> Any:
    """`AutoTokenizer.from_pretrained`, offline-friendly: a local folder or a cached hub id."""
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    return AutoTokenizer.from_pretrained(source, **kwargs)


def template_for(
    expert: ExpertConfig, tokenizer: Any | None, error: Exception | None
) -> ChatTemplate:
    """The expert's chat template: `chat_template` if set, else its tokenizer's.

    Without a tokenizer an override still works if it needs no special tokens."""
    if tokenizer is not None:
        return ChatTemplate.from_tokenizer(tokenizer, expert.chat_template)
    source = expert.tokenizer or expert.model_id
    hint = str(error) if isinstance(error, ModelLoadError) else (
        f"expert {expert.name!r}: its tokenizer {source!r} could not be loaded ({error}); set "
        "`tokenizer` to a local tokenizer folder (or a hub id in the local cache)"
    )
    if expert.chat_template is None:
        raise TemplateError(hint + " or `chat_template` to its Jinja chat template")
    if "bos_token" in expert.chat_template or "eos_token" in expert.chat_template:
        raise TemplateError(hint + ": its `chat_template` uses bos_token/eos_token")
    return ChatTemplate(expert.chat_template, {}, f"expert {expert.name!r} chat_template")

