"""The report's figure conventions: one size, the colours of samples and test split, the E_hull window, atomic PNGs."""

from __future__ import annotations

from pathlib import Path

from harness.io import atomic_write

SAMPLE_COLOUR, TEST_COLOUR = "#d95f02", "#7570b3"
OTHER_HULL_COLOUR = "#1b9e77"
EHULL_RANGE = (-0.5, 1.5)  # eV/atom shown; values outside are counted in the title


def new_figure():
    """(pyplot, figure, axes) of the report's size, on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    return plt, fig, ax


def save_figure(plt, fig, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically, with no software stamp (the same figure gives the same bytes)."""
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)
    return path
