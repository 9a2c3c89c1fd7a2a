"""Figures for cards, rendered off-screen to PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402


def render_png(draw: Callable[[Axes], None], *, size: tuple[float, float] = (6, 4)) -> bytes:
    """Call `draw(ax)` on a fresh figure and return it as PNG bytes."""
    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()
    finally:
        plt.close(fig)
