"""The local backend: an expert run in-process with `transformers` on the CPU, in batches.

Loading a GGUF file through transformers dequantizes it (~19 s for SmolLM2-135M here), so the
first load saves a safetensors copy (weights without `quantization_config`, plus tokenizer)
under `<journal folder>/models/`; later loads read that copy (~1 s). The model revision is a
hash of the weight file(s).

Each request is sampled with its own `torch.Generator` seeded by its seed, inside a logits
processor, so a result depends on its own prompt and seed rather than on its batch (up to the
float noise of padding). Completions are tokenized without added special tokens (the prompt
is the template's text, BOS included); chat requests use the tokenizer's chat template.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warriorcoder.assets import resolve_model
from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.errors import ModelLoadError, UnsupportedFeatureError
from warriorcoder.generation.backend import Call, Sink
from warriorcoder.generation.http import cut_at_stops
from warriorcoder.generation.types import (
    CompletionRequest,
    ExpertInfo,
    FinishReason,
    GenerationResult,
    Request,
)

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")

_SHARED_MODELS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
"""Loaded models by the weights they were loaded from: experts of the same weights (seeded
apart, as the embedded default's two Qwen experts) share one copy in memory while any is used."""

_LOAD_LOCK = threading.RLock()
"""One lock for every local model's loading: `from_pretrained` switches process-wide state
(default dtype and device contexts), so two models loaded at once in two threads can come out
with uninitialised weights (seen: NaN logits)."""


def weight_files(expert: ExpertConfig) -> list[Path]:
    """The files whose bytes are the local model's weights."""
    root = Path(str(expert.local)).expanduser()
    if expert.gguf_file:
        path = root / expert.gguf_file
        if not path.is_file():
            raise FileNotFoundError(
                f"expert {expert.name!r}: gguf_file {expert.gguf_file!r} is not in {root}"
            )
        return [path]
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"expert {expert.name!r}: local model {root} does not exist")
    files = sorted(p for p in root.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"expert {expert.name!r}: no weight files in {root}")
    return files


def weights_revision(files: Sequence[Path], cache: Path) -> str:
    """sha256 of the weight files (cached by path, size and mtime), as `sha256:<hex16>`."""
    stamp = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    stamp_key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:24]
    record = cache / "revisions" / f"{stamp_key}.txt"
    if record.is_file():
        return record.read_text().strip()
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    revision = f"sha256:{digest.hexdigest()[:16]}"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(revision)
    return revision


@dataclass
class _Row:
    request: Request
    prompt: str


class LocalModel:
    """A local expert: lazy model loading (cached copy for GGUF), batched seeded generation."""

    def __init__(self, expert: ExpertConfig, cache_root: Path, batch_size: int) -> None:
        # `embedded:<name>` (a model shipped in a PyPI package) becomes its folder on disk.
        resolved = resolve_model(str(expert.local), expert.gguf_file)
        self.expert = expert.model_copy(
            update={"local": str(resolved.path), "gguf_file": resolved.gguf_file}
        )
        expert = self.expert
        self.cache_root = cache_root
        self.batch_size = batch_size
        self._files = weight_files(expert)
        self._revision: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = _LOAD_LOCK

    @property
    def revision(self) -> str:
        if self._revision is None:
            self._revision = weights_revision(self._files, self.cache_root)
        return self._revision

    def info(self) -> ExpertInfo:
        return ExpertInfo(
            name=self.expert.name,
            model_id=self.expert.model_id,
            model_revision=self.revision,
            revision_source="weights",
            max_stop_sequences=64,
            max_concurrent_requests=self.batch_size,
        )

    @property
    def copy_dir(self) -> Path:
        """Where a GGUF model's safetensors copy lives."""
        slug = self.expert.model_id.replace("/", "--")
        return self.cache_root / f"{slug}-{self.revision.split(':')[-1]}"

    def tokenizer(self) -> Any:
        """The tokenizer (from the safetensors copy when there is one: no GGUF parsing)."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self._load_tokenizer()
            return self._tokenizer

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        if self.expert.tokenizer:
            return AutoTokenizer.from_pretrained(self.expert.tokenizer)
        if self.expert.gguf_file:
            if (self.copy_dir / "tokenizer_config.json").is_file():
                return AutoTokenizer.from_pretrained(self.copy_dir)
            return AutoTokenizer.from_pretrained(
                str(self.expert.local), gguf_file=self.expert.gguf_file
            )
        return AutoTokenizer.from_pretrained(str(self.expert.local))

    def model(self) -> Any:
        """The loaded model, shared with every other expert of the same weights."""
        with self._lock:
            if self._model is None:
                source = self.copy_dir if self.expert.gguf_file else Path(self.expert.local)
                key = str(source.resolve())
                self._model = _SHARED_MODELS.get(key)
                if self._model is None:
                    self._model = _SHARED_MODELS[key] = self._load_model()
            return self._model

    def _load_model(self) -> Any:
        from transformers import AutoModelForCausalLM

        if not self.expert.gguf_file:
            model = AutoModelForCausalLM.from_pretrained(str(self.expert.local))
        elif (self.copy_dir / "config.json").is_file():
            model = AutoModelForCausalLM.from_pretrained(self.copy_dir)
        else:
            model = self._convert_gguf()
        return model.eval()

    def _convert_gguf(self) -> Any:
        """Load the GGUF (dequantizing) and save a plain safetensors copy with its tokenizer."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.info(
            "expert %s: converting %s once to %s", self.expert.name, self._files[0], self.copy_dir
        )
        source = str(self.expert.local)
        loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=self.expert.gguf_file)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        tokenizer = self._tokenizer or AutoTokenizer.from_pretrained(
            source, gguf_file=self.expert.gguf_file
        )
        staging = self.copy_dir.with_name(self.copy_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(self.copy_dir, ignore_errors=True)
        staging.rename(self.copy_dir)
        return model

    def prompt_of(self, request: Request) -> str:
        if isinstance(request, CompletionRequest):
            return self._with_special_tokens(request.prompt)
        messages = [{"role": role, "content": content} for role, content in request.messages]
        return self.tokenizer().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _with_special_tokens(self, prompt: str) -> str:
        """A raw prompt as TGI's `/generate` sees it: with the BOS its tokenizer adds."""
        tokenizer = self.tokenizer()
        with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
        without = tokenizer("x", add_special_tokens=False)["input_ids"]
        adds_bos = len(with_special) > len(without) and with_special[0] == tokenizer.bos_token_id
        return tokenizer.bos_token + prompt if adds_bos and tokenizer.bos_token else prompt

    def generate(self, requests: Sequence[Request]) -> list[GenerationResult]:
        """Generate a batch (at most `batch_size` requests), each with its own seed."""
        with _LOAD_LOCK:  # transformers' lazy imports race when two experts' threads start
            import torch
            from transformers import GenerationConfig, LogitsProcessorList

        grammars = [_regex_of(request.params.grammar) for request in requests]
        tokenizer = self.tokenizer()
        model = self.model()
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
        eos_ids = _eos_ids(tokenizer, model)
        config = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos_ids,
            stop_strings=stops or None,
        )
        sampler = _PerRowSampler(
            [r.params.temperature for r in requests],
            [r.params.top_p for r in requests],
            [r.params.seed for r in requests],
            constraint=_RegexConstraint(grammars, tokenizer, batch["input_ids"].shape[1], eos_ids)
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
            results.append(self._result(row.request, new, eos_ids, int(prompt_tokens[i])))
        return results

    def _result(
        self, request: Request, tokens: list[int], eos_ids: list[int], prompt_tokens: int
    ) -> GenerationResult:
        limit = request.params.max_new_tokens
        reason: FinishReason = "length"
        for index, token in enumerate(tokens[:limit]):
            if token in eos_ids:
                tokens, reason = tokens[:index], "eos_token"
                break
        else:
            tokens = tokens[:limit]
            if len(tokens) < limit:
                reason = "eos_token"
        text = self.tokenizer().decode(tokens, skip_special_tokens=True)
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
            model_revision=self.revision,
        )


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, list | tuple) else [ids] if ids is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _regex_of(grammar: dict[str, Any] | None) -> Any:
    """The compiled pattern of a TGI-style `{"type": "regex", "value": ...}` grammar."""
    if grammar is None:
        return None
    if grammar.get("type") != "regex":
        raise UnsupportedFeatureError(
            f"the local backend supports regex grammars only, not {grammar.get('type')!r}"
        )
    import regex

    return regex.compile(grammar["value"])


class _RegexConstraint:
    """Guided decoding for regex grammars: a token is allowed when the text generated with it
    can still grow into a full match (`regex`'s partial matching); EOS only after a full
    match. Candidates are tried most likely first, so the cost is a few checks per token."""

    max_checks = 4096

    def __init__(self, patterns: list[Any], tokenizer: Any, prompt_len: int,
                 eos_ids: list[int]) -> None:
        self.patterns = patterns
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.eos_ids = set(eos_ids)

    def choose(self, row: int, input_ids: Any, ranked: Any, limit: int | None = None
               ) -> int | None:
        """The first allowed token of `ranked` (token ids, best first); None: no constraint;
        -1: none of them is allowed."""
        pattern = self.patterns[row]
        if pattern is None:
            return None
        generated = input_ids[row, self.prompt_len :].tolist()
        if self.eos_ids.intersection(generated):
            return None  # the row has finished; what follows is padding
        complete = pattern.fullmatch(self.tokenizer.decode(generated)) is not None
        for token in ranked[: limit or self.max_checks].tolist():
            if token in self.eos_ids:
                if complete:
                    return token
                continue
            text = self.tokenizer.decode([*generated, token])
            if pattern.fullmatch(text, partial=True) is not None:
                return token
        return -1


class _PerRowSampler:
    """A logits processor that samples each row with its own generator (temperature, top-p)
    and leaves only the chosen token possible, so greedy decoding takes it."""

    def __init__(self, temperatures: list[float], top_ps: list[float], seeds: list[int],
                 constraint: _RegexConstraint | None = None) -> None:
        import torch

        self.temperatures = temperatures
        self.top_ps = top_ps
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.constraint = constraint

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        chosen = torch.empty(scores.shape[0], dtype=torch.long)
        for row in range(scores.shape[0]):
            logits = scores[row].float()
            temperature = self.temperatures[row]
            if self.constraint is not None and self.constraint.patterns[row] is not None:
                chosen[row] = self._constrained(row, input_ids, logits, temperature)
                continue
            if temperature <= 0:
                chosen[row] = int(torch.argmax(logits))
                continue
            probs = torch.softmax(logits / temperature, dim=-1)
            top_p = self.top_ps[row]
            if top_p < 1.0:
                sorted_probs, order = torch.sort(probs, descending=True)
                keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
                keep[0] = True
                probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
            chosen[row] = int(torch.multinomial(probs, 1, generator=self.generators[row]))
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(scores.shape[0]), chosen] = 0.0
        return forced

    def _constrained(self, row: int, input_ids: Any, logits: Any, temperature: float) -> int:
        """The row's token under its regex: candidates ranked greedily, or for sampling in the
        order of a weighted draw without replacement (so the first allowed one is a sample)."""
        import torch

        if temperature <= 0:
            ranked = torch.argsort(logits, descending=True)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            draws = min(int((probs > 0).sum()), _RegexConstraint.max_checks)
            ranked = torch.multinomial(probs, draws, replacement=False,
                                       generator=self.generators[row])
        token = self.constraint.choose(row, input_ids, ranked)
        if token == -1:  # the likely tokens are all ruled out: try every token, best first
            everything = torch.argsort(logits, descending=True)
            token = self.constraint.choose(row, input_ids, everything, limit=len(everything))
        if token is None:
            return int(ranked[0])
        if token == -1:  # nothing continues the match: stop; the reply is recorded as it is
            return min(self.constraint.eos_ids)
        return token


class LocalBackend:
    """The backend protocol (`generation.backend`) over a `LocalModel`: batches of
    `local_batch_size` requests, shortest `max_new_tokens` first, in a worker thread."""

    kind = "local"
    renders_chat_locally = True

    def __init__(self, expert: ExpertConfig, generation: GenerationConfig, cache_root: Path):
        self.expert = expert
        self.name = expert.name
        self.down: dict[str, str] = {}
        self.batch_size = generation.local_batch_size
        self.model = LocalModel(expert, cache_root, generation.local_batch_size)

    async def info(self, session: Any = None) -> ExpertInfo:
        return self.model.info()

    def tokenizer(self) -> Any:
        """The model's tokenizer (or `tokenizer`); raises `ModelLoadError`."""
        try:
            return self.model.tokenizer()
        except (OSError, ValueError) as error:
            source = self.expert.tokenizer or self.model.expert.local
            raise ModelLoadError(
                f"expert {self.name!r}: its tokenizer {source!s} cannot be loaded ({error}); set "
                "`tokenizer:` to a local tokenizer folder"
            ) from error

    def check(self, request: Request) -> None:
        _regex_of(request.params.grammar)

    async def run(self, session: Any, calls: Sequence[Call], sink: Sink) -> None:
        import asyncio

        ordered = sorted(calls, key=lambda call: call.request.params.max_new_tokens)
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            for _ in batch:
                sink.sent()
            try:
                outputs = await asyncio.to_thread(
                    self.model.generate, [call.request for call in batch]
                )
            except Exception as error:  # recorded per call; the next run retries them
                logger.exception("expert %s: local generation failed", self.name)
                message = f"local generation failed: {type(error).__name__}: {error}"
                failed = GenerationResult.failure(
                    message, self.expert.model_id, self.model.revision
                )
                outputs = [failed for _ in batch]
            for call, result in zip(batch, outputs, strict=True):
                sink.finished(call, result, 1, True)


def loadable_model(name_or_path: str, cache_root: Path) -> str:
    """What `from_pretrained` can load for a model reference: a packaged GGUF model (an
    `embedded:` name, or a Hub id with a packaged copy) becomes its plain safetensors copy,
    converted once into `cache_root`; anything else is returned as transformers takes it."""
    resolved = resolve_model(name_or_path)
    if resolved.gguf_file is None:
        return str(resolved.path) if resolved.path.exists() else name_or_path
    expert = ExpertConfig(name="model", model_id=name_or_path, local=str(resolved.path),
                          gguf_file=resolved.gguf_file)
    model = LocalModel(expert, cache_root, batch_size=1)
    model.model()
    return str(model.copy_dir)
