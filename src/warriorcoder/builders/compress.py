"""`compress` -> `compressed`: a diverse subset of the filtered instructions by KCenterGreedy.

Instructions are embedded with sentence-transformers (`compress.embedding_model`; the packaged
all-MiniLM-L6-v2 stands in for its Hub id offline), normalised to unit length, and `size` of
them are selected greedily, each the point farthest from the centers chosen so far (Sener and
Savarese 2018). The first center is drawn from `compress.seed` and recorded in the card.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np

from warriorcoder.assets import resolve_model
from warriorcoder.builders.base import Phase, PhaseInput, PhaseOutput, PhasePlan
from warriorcoder.builders.filter import FEATURES as FILTERED_FEATURES
from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards import CardContent, CardSection, Figure, markdown_table, render_png

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from warriorcoder.scoring.kcenter import KCenterResult

logger = logging.getLogger(__name__)

RADIUS_FIGURE = "figures/coverage_radius.png"

FEATURES = datasets.Features({**FILTERED_FEATURES,
                              "kcenter_rank": datasets.Value("int32"),
                              "kcenter_distance": datasets.Value("float64")})
"""Columns of `compressed` read from a `filtered` version: its columns (any other parent
column is kept), the selection step and the distance to the nearest earlier center."""

PHASE = Phase(
    name="compress",
    dataset="compressed",
    parent="filter",
    summary="A diverse subset of the filtered instructions selected by KCenterGreedy over "
    "sentence embeddings.",
    required_columns=("id", "instruction"),
    features=FEATURES,
    config_sections=("compress",),
)


@PHASE.planner
def plan(config: ArenaConfig, parent: datasets.Dataset | None, rows_in: int | None) -> PhasePlan:
    """No LLM call: an embedding per row, then KCenterGreedy keeps `compress.size` of them."""
    rows = len(parent) if parent is not None else rows_in or 0
    return PhasePlan(calls=0, prompt_tokens=0, generated_tokens=0,
                     rows_out=min(rows, config.compress.size))


def embedding_devices() -> list[str]:
    """Where to embed: every visible GPU (one process each) when there are several, else the
    single GPU, else the CPU."""
    import torch

    count = torch.cuda.device_count()
    if count > 1:
        return [f"cuda:{index}" for index in range(count)]
    return ["cuda"] if count == 1 else ["cpu"]


@lru_cache(maxsize=2)
def _load_model(path: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


def selection_device(setting: str) -> str:
    """Where KCenterGreedy runs for `compress.device`: `auto` is the GPU when there is one."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embed_instructions(texts: list[str], model_name: str, batch_size: int,
                       device: str = "cpu") -> Any:
    """Unit-length float32 sentence embeddings of `texts` (n x dim): a numpy array, or for a
    `device` other than `cpu` a torch tensor there, handed over without a trip through the
    host (unless several GPUs embed: their pool gathers on the host)."""
    devices = embedding_devices()
    if device != "cpu":
        return _embed_to_tensor(texts, model_name, batch_size, devices, device)
    model = _load_model(str(resolve_model(model_name).path),
                        "cpu" if len(devices) > 1 else devices[0])
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "convert_to_numpy": True,
        "normalize_embeddings": True,
        "show_progress_bar": logger.isEnabledFor(logging.INFO) and len(texts) > 10 * batch_size,
    }
    if len(devices) > 1:
        pool = model.start_multi_process_pool(devices)
        try:
            embeddings = model.encode(texts, pool=pool, **options)
        finally:
            model.stop_multi_process_pool(pool)
    else:
        embeddings = model.encode(texts, **options)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def _embed_to_tensor(texts: list[str], model_name: str, batch_size: int, devices: list[str],
                     device: str) -> Any:
    """`embed_instructions` for a torch `device`: the encoder's tensor stays on the GPU."""
    import torch

    if len(devices) > 1:
        array = embed_instructions(texts, model_name, batch_size, device="cpu")
        return torch.from_numpy(array).to(device)
    model = _load_model(str(resolve_model(model_name).path), devices[0])
    embeddings = model.encode(
        texts, batch_size=batch_size, convert_to_numpy=False, convert_to_tensor=True,
        normalize_embeddings=True, device=devices[0],
        show_progress_bar=logger.isEnabledFor(logging.INFO) and len(texts) > 10 * batch_size,
    ).to(device=device, dtype=torch.float32)
    norms = torch.linalg.vector_norm(embeddings, dim=1, keepdim=True)
    return embeddings / norms.clamp_min(1e-12)


@PHASE.builder
def build(phase_input: PhaseInput) -> PhaseOutput:
    from warriorcoder.scoring.kcenter import coverage_radius_curve, first_center, kcenter_greedy

    config = phase_input.config
    options = config.compress
    rows = phase_input.parent_rows
    n = len(rows)
    texts = rows["instruction"]
    device = selection_device(options.device)
    embeddings = embed_instructions(list(texts), options.embedding_model, options.batch_size,
                                    device=device)
    first = first_center(n, options.seed)
    result = kcenter_greedy(embeddings, options.size, first=first,
                            chunk_size=options.chunk_size, device=device)
    indices = [int(i) for i in result.indices]
    k = len(indices)
    # The first center has no earlier center: its distance is left empty, not 0.
    distances = [None, *(float(d) for d in result.distances[1:])]

    selected = rows.select(indices)
    selected = selected.add_column("kcenter_rank", list(range(k)))
    selected = selected.add_column("kcenter_distance", distances)
    selected = selected.cast_column("kcenter_rank", datasets.Value("int32"))
    selected = selected.cast_column("kcenter_distance", datasets.Value("float64"))

    curve = np.asarray(coverage_radius_curve(result), dtype=np.float64)
    ids = rows["id"] if "id" in rows.column_names else [str(i) for i in range(n)]
    section = _selection_section(
        config.compress.embedding_model, embeddings, result, first, ids[first], curve
    )
    content = CardContent(
        counts=[("filtered rows", n), ("selected by KCenterGreedy", k)],
        sections=[section],
        experts=experts_from_rows(rows),
    )
    return PhaseOutput(dataset=selected, content=content)


def experts_from_rows(rows: datasets.Dataset) -> list[dict[str, Any]]:
    """The experts as the rows record them (no servers are needed for this phase)."""
    wanted = ("expert", "model_id", "model_revision")
    if not set(wanted) <= set(rows.column_names):
        return []
    seen = sorted({tuple(r[c] for c in wanted) for r in rows.select_columns(list(wanted))})
    return [{"name": e, "model_id": m, "model_revision": r} for e, m, r in seen]


def _selection_section(
    model_name: str,
    embeddings: np.ndarray,
    result: KCenterResult,
    first: int,
    first_id: str,
    curve: np.ndarray,
) -> CardSection:
    devices = embedding_devices()
    n, k = len(embeddings), len(result.indices)

    def draw(ax: Any) -> None:
        ax.plot(np.arange(1, len(curve) + 1), curve, color="tab:blue")
        ax.set_xlabel("centers selected")
        ax.set_ylabel("coverage radius (max distance to nearest center)")
        ax.set_title(f"KCenterGreedy coverage radius ({n} instructions)")
        ax.grid(alpha=0.3)

    figure = Figure(RADIUS_FIGURE, "Coverage radius curve", render_png(draw))
    final = result.final_radius
    steps = sorted({1, max(1, k // 4), max(1, k // 2), max(1, 3 * k // 4), k})
    table = markdown_table(["centers", "coverage radius"],
                           [[s, float(curve[s - 1])] for s in steps if s <= len(curve)])
    text = (
        f"Embedding model: `{model_name}` ({embeddings.shape[1]} dimensions, unit-normalised, "
        f"Euclidean distance), computed on {', '.join(devices)}.\n\n"
        f"Selected {k} of {n} instructions ({result.requested} asked"
        + ("; every other row duplicates a selected one" if k < min(n, result.requested) else "")
        + f"). First center (seeded): row {first} of the parent, "
        f"id `{first_id}`. Rows are in selection order: `kcenter_rank` is the step at which a "
        "row was chosen and `kcenter_distance` its distance to the nearest earlier center "
        "(empty for the first), so any prefix of this dataset is itself a KCenterGreedy "
        f"selection. Coverage radius after all {k} centers: {final:.4f}.\n\n"
        + table
    )
    return CardSection("KCenterGreedy selection", text, (figure,))
