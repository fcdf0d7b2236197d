"""matplotlib for petra's plots: its pyplot on the file-only Agg backend (no display needed),
imported when a plot is drawn, so that importing petra does not import matplotlib."""

from __future__ import annotations


def pyplot():
    """`matplotlib.pyplot`, on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
