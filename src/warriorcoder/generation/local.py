"""The local backend: an expert run in-process with `transformers` on the CPU, in batches.

The model, its tokenizer and its revision (a hash of the weight files) come from
`loading.LocalModel`; each request is sampled with its own seed (`sampling`). Completions are
tokenized without added special tokens (the prompt is the template's text, BOS included, as
TGI's `/generate` sees it); chat requests use the tokenizer's chat template.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.errors import ModelLoadError
from warriorcoder.generation.backend import Call, Sink
from warriorcoder.generation.loading import LOAD_LOCK, LocalModel, loadable_model
from warriorcoder.generation.sampling import PerRowSampler, RegexConstraint, eos_ids, regex_of
from warriorcoder.generation.types import (
    CompletionRequest,
    ExpertInfo,
    FinishReason,
    GenerationResult,
    Request,
)
from warriorcoder.generation.wire import cut_at_stops

logger = logging.getLogger(__name__)

__all__ = ["LocalBackend", "loadable_model"]


@dataclass
class _Row:
    request: Request
    prompt: str


class LocalBackend:
    """The backend protocol (`generation.backend`) over a `loading.LocalModel`: batches of
    `local_batch_size` requests, shortest `max_new_tokens` first, in a worker thread."""

    kind = "local"
    renders_chat_locally = True

    def __init__(self, expert: ExpertConfig, generation: GenerationConfig, cache_root: Path):
        self.expert = expert
        self.name = expert.name
        self.down: dict[str, str] = {}
        self.batch_size = generation.local_batch_size
        self.model = LocalModel(
            str(expert.local), expert.model_id, cache_root, gguf_file=expert.gguf_file,
            tokenizer=expert.tokenizer, owner=f"expert {expert.name!r}",
        )

    async def info(self, session: Any = None) -> ExpertInfo:
        return ExpertInfo(
            name=self.name,
            model_id=self.expert.model_id,
            model_revision=self.model.revision,
            revision_source="weights",
            max_stop_sequences=64,
            max_concurrent_requests=self.batch_size,
        )

    def tokenizer(self) -> Any:
        """The model's tokenizer (or `tokenizer`); raises `ModelLoadError`."""
        try:
            return self.model.tokenizer()
        except (OSError, ValueError) as error:
            source = self.expert.tokenizer or self.model.source
            raise ModelLoadError(
                f"expert {self.name!r}: its tokenizer {source!s} cannot be loaded ({error}); set "
                "`tokenizer:` to a local tokenizer folder"
            ) from error

    def check(self, request: Request) -> None:
        regex_of(request.params.grammar)

    async def run(self, session: Any, calls: Sequence[Call], sink: Sink) -> None:
        import asyncio

        ordered = sorted(calls, key=lambda call: call.request.params.max_new_tokens)
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            for _ in batch:
                sink.sent()
            try:
                outputs = await asyncio.to_thread(self.generate, [call.request for call in batch])
            except Exception as error:  # recorded per call; the next run retries them
                logger.exception("expert %s: local generation failed", self.name)
                message = f"local generation failed: {type(error).__name__}: {error}"
                failed = GenerationResult.failure(
                    message, self.expert.model_id, self.model.revision
                )
                outputs = [failed for _ in batch]
            for call, result in zip(batch, outputs, strict=True):
                sink.finished(call, result, 1, True)

    def prompt_of(self, request: Request) -> str:
        if isinstance(request, CompletionRequest):
            return self._with_special_tokens(request.prompt)
        messages = [{"role": role, "content": content} for role, content in request.messages]
        return self.model.tokenizer().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _with_special_tokens(self, prompt: str) -> str:
        """A raw prompt as TGI's `/generate` sees it: with the BOS its tokenizer adds."""
        tokenizer = self.model.tokenizer()
        with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
        without = tokenizer("x", add_special_tokens=False)["input_ids"]
        adds_bos = len(with_special) > len(without) and with_special[0] == tokenizer.bos_token_id
        return tokenizer.bos_token + prompt if adds_bos and tokenizer.bos_token else prompt

    def generate(self, requests: Sequence[Request]) -> list[GenerationResult]:
        """Generate a batch (at most `batch_size` requests), each with its own seed."""
        with LOAD_LOCK:  # transformers' lazy imports race when two experts' threads start
            import torch
            from transformers import GenerationConfig, LogitsProcessorList

        grammars = [regex_of(request.params.grammar) for request in requests]
        tokenizer = self.model.tokenizer()
        model = self.model.model()
        rows = [_Row(r, self.prompt_of(r)) for r in requests]
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        batch = tokenizer(
            [row.prompt for row in rows],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        max_new = max(r.params.max_new_tokens for r in requests)
        stops = sorted({s for r in requests for s in r.params.stop if s})
        eos = eos_ids(tokenizer, model)
        config = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
            stop_strings=stops or None,
        )
        sampler = PerRowSampler(
            [r.params.temperature for r in requests],
            [r.params.top_p for r in requests],
            [r.params.seed for r in requests],
            constraint=RegexConstraint(grammars, tokenizer, batch["input_ids"].shape[1], eos)
            if any(grammars) else None,
        )
        with torch.inference_mode():
            output = model.generate(
                **batch,
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                tokenizer=tokenizer if stops else None,
            )
        prompt_len = batch["input_ids"].shape[1]
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        results = []
        for i, row in enumerate(rows):
            new = output[i, prompt_len:].tolist()
            results.append(self._result(row.request, new, eos, int(prompt_tokens[i])))
        return results

    def _result(
        self, request: Request, tokens: list[int], eos: list[int], prompt_tokens: int
    ) -> GenerationResult:
        limit = request.params.max_new_tokens
        reason: FinishReason = "length"
        for index, token in enumerate(tokens[:limit]):
            if token in eos:
                tokens, reason = tokens[:index], "eos_token"
                break
        else:
            tokens = tokens[:limit]
            if len(tokens) < limit:
                reason = "eos_token"
        text = self.model.tokenizer().decode(tokens, skip_special_tokens=True)
        text, cut = cut_at_stops(text, request.params.stop)
        if cut:
            reason = "stop_sequence"
        generated = len(tokens) + (1 if reason == "eos_token" else 0)
        return GenerationResult(
            text=text,
            finish_reason=reason,
            generated_tokens=generated,
            prompt_tokens=prompt_tokens,
            model_id=self.expert.model_id,
            model_revision=self.model.revision,
        )
