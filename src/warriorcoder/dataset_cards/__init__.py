"""Dataset cards and the statistics and figures they show."""

from warriorcoder.dataset_cards.card import (
    CardContent,
    CardSection,
    Figure,
    card_lineage,
    markdown_table,
    render_dataset_card,
)
from warriorcoder.dataset_cards.figures import render_png

__all__ = [
    "CardContent",
    "CardSection",
    "Figure",
    "card_lineage",
    "markdown_table",
    "render_dataset_card",
    "render_png",
]
