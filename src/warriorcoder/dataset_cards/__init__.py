"""Every card warriorcoder writes, built one way (a Jinja template in `templates/` rendered with
`huggingface_hub`'s `DatasetCardData` / `ModelCardData`), and the figures they show: the
phase datasets (`card.py`), the model (`model_card.py`) and the evals (`evals_card.py`).

Card code takes plain data: it imports no builder, trainer or evaluator.
"""

from warriorcoder.dataset_cards.card import (
    CardContent,
    CardSection,
    Figure,
    card_lineage,
    markdown_table,
    render_dataset_card,
)
from warriorcoder.dataset_cards.evals_card import EvalsCardFacts, render_evals_card
from warriorcoder.dataset_cards.figures import render_png
from warriorcoder.dataset_cards.model_card import (
    ModelCardFacts,
    evaluation_section,
    render_model_card,
    set_evaluation_section,
    write_model_card,
)

__all__ = [
    "CardContent",
    "CardSection",
    "EvalsCardFacts",
    "Figure",
    "ModelCardFacts",
    "card_lineage",
    "evaluation_section",
    "markdown_table",
    "render_dataset_card",
    "render_evals_card",
    "render_model_card",
    "render_png",
    "set_evaluation_section",
    "write_model_card",
]
