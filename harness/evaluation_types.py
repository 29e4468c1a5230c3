"""Types where the runner meets the metric families: one sample slot, and what a family returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pymatgen.core import Structure

# How a family's per-sample reason restates a Sample's own ``reason`` when it was never built.
NOT_CONSTRUCTED_PREFIX = "not constructed: "


@dataclass(frozen=True)
class Sample:
    """One requested sample: its structure, or ``None`` with the reason it could not be constructed."""

    index: int
    structure: Structure | None
    reason: str | None = None  # set iff structure is None

    @property
    def constructed(self) -> bool:
        return self.structure is not None


@dataclass
class FamilyResult:
    """What a metric family returns: record metrics, per-sample columns (indexed by sample index), details."""

    metrics: dict[str, Any]
    table: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
