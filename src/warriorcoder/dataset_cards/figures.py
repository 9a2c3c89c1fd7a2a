"""Figures for cards, rendered off-screen to PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402


def render_png(draw: Callable[[Axes], None], *, size: tuple[float, float] = (6, 4),
               metadata: Mapping[str, str | None] | None = None) -> bytes:
    """Call `draw(ax)` on a fresh figure and return it as PNG bytes (`metadata`: PNG text
    chunks, e.g. the plotted numbers; None drops a default key such as `Software`)."""
    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        extra = {"metadata": dict(metadata)} if metadata is not None else {}
        fig.savefig(buffer, format="png", dpi=100, **extra)
        return buffer.getvalue()
    finally:
        plt.close(fig)
