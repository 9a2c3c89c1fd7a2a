"""The model card of a trained checkpoint: lineage, hyperparameters and the loss curve."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from matplotlib.figure import Figure

from warriorcoder.training.result import TrainResult

LOSS_FIGURE = "loss_curve.png"


def plot_loss_curve(history: list[tuple[int, float]], path: Path) -> Path:
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


def _table(rows: dict[str, object]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {key} | `{value}` |" for key, value in rows.items()]
    return "\n".join(lines)


def write_model_card(
    folder: Path, result: TrainResult, *, license: str, prompt_example: str
) -> ModelCard:
    """Write README.md (and the loss figure) into the checkpoint folder."""
    if result.loss_history:
        plot_loss_curve(result.loss_history, folder / LOSS_FIGURE)
    source = result.dataset
    local_base = Path(result.base_model).exists()
    data = ModelCardData(
        base_model=None if local_base else result.base_model,
        datasets=[source.repo_id],
        library_name="transformers",
        license=license,
        pipeline_tag="text-generation",
        tags=["warriorcoder", "code", "sft"],
    )
    base = (
        f"`{result.base_model}` (a local folder)"
        if local_base
        else f"[`{result.base_model}`](https://huggingface.co/{result.base_model})"
    )
    final = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    dataset_rows = {
        "repo": source.repo_id,
        "version": source.version,
        "revision": source.revision or "n/a",
        "location": source.location,
        "rows in the dataset": result.rows_in,
        "rows trained on": result.rows_used,
        "rows dropped (longer than max_length)": result.rows_dropped_too_long,
    }
    figure = f"![training loss]({LOSS_FIGURE})" if result.loss_history else "(no loss logged)"
    content = f"""---
{data.to_yaml()}
---

# {Path(result.base_model).name} + WarriorCoder SFT

Supervised fine-tune of {base} on WarriorCoder `sft_final`
**{source.repo_id}@{source.version}** (expert battles; the winning answer per instruction),
trained with warriorcoder {version("warriorcoder")}.

## Dataset

{_table(dataset_rows)}

## Prompt format

The loss is on the response tokens only. The tokenizer's chat template renders this prompt, so
`tokenizer.apply_chat_template([{{"role": "user", "content": ...}}], add_generation_prompt=True)`
prompts the model exactly as it was trained
(here for the instruction `<instruction>`; the response follows, then eos):

```
{prompt_example}
```

## Hyperparameters

{_table(result.hyperparameters)}

## Training

Optimizer steps: {result.global_step}. Final training loss: **{final}**
(mean over the run: {"n/a" if result.train_loss is None else f"{result.train_loss:.4f}"}).

{figure}
"""
    card = ModelCard(content)
    card.save(folder / "README.md")
    return card


EVALUATION_HEADING = "## Evaluation"


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
