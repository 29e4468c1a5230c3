"""The frozen constants of the evaluation protocol (see docs/protocol.md); bump PROTOCOL_VERSION on any change."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

# 1.0: first release.
# 1.1: the offline hull's dataset references are relaxed with the samples' CHGNet settings before E_hull is taken
#      (harness/stability/ondemand.py); 1.0 compared relaxed samples with statically scored references.
#      Only stable_rate, metastable_rate and sun_rate (and the costs derived from them) can differ.
# 1.2: E_hull against a Materials Project hull by default (harness/stability/mp_reference.py): formation energies
#      of MP (Matbench mp_e_form) with MP's elemental references, the sample's relaxed CHGNet energy placed on it as
#      calibrated in results/benchmarks/mp_hull_calibration.json; the dataset's own hull stays as --hull dataset.
#      MP-20 novelty is judged against val + train_recovered (4,590 of the 27,136 training structures).
#      Only stable_rate, metastable_rate, novel_rate, sun_rate and the costs derived from them can differ.
PROTOCOL_VERSION = "1.2"


@dataclass(frozen=True)
class Tier:
    """How many samples a run generates and how many of them are relaxed for stability."""

    name: str
    n_samples: int
    n_relax: int


TIERS = MappingProxyType(
    {
        "full": Tier("full", n_samples=10_000, n_relax=1_000),
        "quick": Tier("quick", n_samples=1_000, n_relax=100),
    }
)
# Records of externally supplied sample files of any size carry this tier.
CUSTOM_TIER = "custom"

# Coverage cutoffs (structure, composition) per dataset, as the CDVAE evaluation fixes them.
COV_CUTOFFS = MappingProxyType(
    {
        "mp20": (0.4, 10.0),
        "perov5": (0.2, 4.0),
        "carbon24": (0.2, 4.0),
    }
)

# Validity.
MIN_INTERATOMIC_DISTANCE = 0.5  # Å, minimum-image, diagonal excluded
MIN_VOLUME = 0.1  # Å^3
MAX_OXIDATION_COMBINATIONS = 10**7  # DiffCSP's cap: more combinations -> invalid

# Property distributions.
N_WDIST_SAMPLES = 1_000

# Space-group analysis.
SG_SYMPREC = 0.1
SG_SYMPREC_TEST_SYMMCD = 0.01  # pymatgen get_space_group_info() default, as SymmCD's script uses

# Stability.
DEFAULT_HULL = "mp"  # harness/stability/mp_reference.py; "dataset" is the dataset's own CHGNet hull (1.0-1.1)
# Where a dataset's full training split is missing here, novelty uses these known training-side structures instead
# of the named split (a superset of it); the record says how many of the training split were known.
NOVELTY_SUBSTITUTES = MappingProxyType({("mp20", "train_partial"): "train_recovered"})
TRAIN_SPLIT_SIZES = MappingProxyType({"mp20": 27_136, "carbon24": 6_091, "perov5": 11_356})
STABLE_EHULL = 0.0  # eV/atom
METASTABLE_EHULL = 0.1  # eV/atom

# Every key a record's `metrics` carries; absent values are null, never made up.
METRIC_KEYS = (
    "struct_valid",
    "comp_valid",
    "valid",
    "cov_recall",
    "cov_precision",
    "wdist_density",
    "wdist_num_elems",
    "sg_jsd",
    "sg_jsd_symmcd",
    "stable_rate",
    "metastable_rate",
    "unique_rate",
    "novel_rate",
    "sun_rate",
    "n_relaxed",
    "n_stable",
    "n_sun",
    "seconds_per_sample",
    "seconds_per_stable",
    "seconds_per_sun",
)
