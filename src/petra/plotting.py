"""matplotlib for petra's plots: its pyplot on the file-only Agg backend (no display needed),
imported when a plot is drawn, so that importing petra does not import matplotlib."""

from __future__ import annotations


def pyplot():
    """`matplotlib.pyplot`, on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, axes, path, legend_size: int = 8, legend_outside: bool = False) -> None:
    """Finish a plot petra's way (a legend, inside the axes or right of them; a light grid; a
    tight layout) and write it to the PNG `path` (its folder made), closing the figure."""
    from pathlib import Path

    where = {"loc": "upper left", "bbox_to_anchor": (1.02, 1)} if legend_outside else {}
    axes.legend(fontsize=legend_size, **where)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight" if legend_outside else None)
    pyplot().close(figure)
