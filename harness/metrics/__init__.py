"""The protocol's distribution metrics, one module per family, and the composer the runner calls.

``evaluate(samples, test, *, cov_cutoffs, seed, executor=None, progress=True, timeout_s=120.0) -> FamilyResult``
fills ``struct_valid, comp_valid, valid, cov_recall, cov_precision, wdist_density, wdist_num_elems, sg_jsd,
sg_jsd_symmcd``. The pure functions below are the same ones it uses.
"""

from harness.metrics.compose import METRICS, TABLE_COLUMNS, describe_sample, evaluate
from harness.metrics.coverage import coverage, coverage_cutoffs
from harness.metrics.distributions import density, num_elements, wdist, wdist_subset
from harness.metrics.fingerprints import (
    composition_fingerprint,
    fingerprint_structures,
    scale_composition,
    structure_fingerprint,
)
from harness.metrics.reference import reference_features
from harness.metrics.symmetry import sg_jsd, sg_jsd_symmcd, spacegroup_number
from harness.metrics.validity import comp_validity, smact_validity, struct_validity

__all__ = [
    "METRICS",
    "TABLE_COLUMNS",
    "comp_validity",
    "composition_fingerprint",
    "coverage",
    "coverage_cutoffs",
    "density",
    "describe_sample",
    "evaluate",
    "fingerprint_structures",
    "num_elements",
    "reference_features",
    "scale_composition",
    "sg_jsd",
    "sg_jsd_symmcd",
    "smact_validity",
    "spacegroup_number",
    "struct_validity",
    "structure_fingerprint",
    "wdist",
    "wdist_subset",
]
