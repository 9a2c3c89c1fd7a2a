"""The model card of a trained checkpoint (`templates/model_card.md`, `ModelCardData`):
the dataset version it learned from, the prompt format, hyperparameters and the loss curve;
and the "Evaluation" section `warriorcoder evaluate` adds to it.

Like a dataset card it is safe to publish as it is: the dataset is named by repo, version
and revision, local paths only relative to the config's folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from matplotlib.figure import Figure

from warriorcoder.lineage import LINEAGE_KEY, package_version

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
LOSS_FIGURE = "loss_curve.png"
EVALUATION_HEADING = "## Evaluation"


@dataclass(frozen=True)
class ModelCardFacts:
    """What the model card says, as plain data (the training code fills it)."""

    base_model: str
    """A Hub model id, or a local folder relative to the config's folder."""
    base_is_local: bool
    dataset_repo: str
    dataset_version: str
    dataset_revision: str | None
    load_snippet: str
    """Python code that loads the exact dataset version."""
    rows: Sequence[tuple[str, int]]
    """Row counts: in the dataset, trained on, dropped."""
    hyperparameters: Mapping[str, Any]
    global_step: int
    final_loss: float | None
    train_loss: float | None
    loss_history: Sequence[tuple[int, float]]
    prompt_example: str
    license: str
    lineage: Mapping[str, Any] = field(default_factory=dict)
    """The `warriorcoder` metadata block (phase, parent, counts, fingerprint, config)."""


def plot_loss_curve(history: Sequence[tuple[int, float]], path: Path) -> Path:
    """Save the training loss per logged step as a PNG."""
    figure = Figure(figsize=(6, 3.5), dpi=120)
    axes = figure.subplots()
    steps = [step for step, _ in history]
    losses = [loss for _, loss in history]
    axes.plot(steps, losses, marker="." if len(history) < 60 else None, linewidth=1.2)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss (response tokens)")
    axes.set_title("SFT training loss")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_model_card(facts: ModelCardFacts) -> ModelCard:
    """The model card of a checkpoint."""
    data = ModelCardData(
        base_model=None if facts.base_is_local else facts.base_model,
        datasets=[facts.dataset_repo],
        library_name="transformers",
        license=facts.license,
        pipeline_tag="text-generation",
        tags=["warriorcoder", "code", "sft"],
        **({LINEAGE_KEY: dict(facts.lineage)} if facts.lineage else {}),
    )
    base = (f"`{facts.base_model}` (a local folder)" if facts.base_is_local
            else f"[`{facts.base_model}`](https://huggingface.co/{facts.base_model})")
    figure = f"![training loss]({LOSS_FIGURE})" if facts.loss_history else "(no loss logged)"
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        title=Path(facts.base_model).name,
        base=base,
        dataset_repo=facts.dataset_repo,
        dataset_version=facts.dataset_version,
        dataset_revision=facts.dataset_revision,
        load_snippet=facts.load_snippet,
        rows=list(facts.rows),
        package_version=package_version(),
        prompt_example=facts.prompt_example,
        hyperparameters=list(facts.hyperparameters.items()),
        global_step=facts.global_step,
        final_loss=_loss(facts.final_loss),
        train_loss=_loss(facts.train_loss),
        figure=figure,
    )


def write_model_card(folder: Path, facts: ModelCardFacts) -> ModelCard:
    """Write README.md (and the loss figure) into the checkpoint folder."""
    if facts.loss_history:
        plot_loss_curve(facts.loss_history, folder / LOSS_FIGURE)
    card = render_model_card(facts)
    card.save(folder / "README.md")
    return card


def evaluation_section(*, prompt_mode: str, decoding: Mapping[str, Any], table: str,
                       isolation: str, evals_spec: str | None = None) -> str:
    """The "Evaluation" section of a model card: the pass@k table and how it was run."""
    described = ", ".join(f"{k}: {v}" for k, v in decoding.items())
    lines = [
        f"Scored as EvalPlus scores them (prompt mode: {prompt_mode}; {described}).",
        "",
        table,
        "",
        f"Generated programs ran under {isolation}.",
    ]
    if evals_spec is not None:
        lines += ["", f"Every sample is in the `evals` dataset **{evals_spec}**."]
    return "\n".join(lines)


def set_evaluation_section(folder: Path, markdown: str) -> Path:
    """Append the "Evaluation" section to the checkpoint folder's README.md, or replace the one
    already there (everything from its heading to the next `## ` heading). A folder without a
    README.md gets one holding only the section. Returns the README's path."""
    path = Path(folder) / "README.md"
    section = f"{EVALUATION_HEADING}\n\n{markdown.strip()}\n"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == EVALUATION_HEADING), None)
    if start is None:
        body = text.rstrip("\n")
        text = f"{body}\n\n{section}" if body else section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rest = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + rest if rest else "")
    path.write_text(text, encoding="utf-8")
    return path
