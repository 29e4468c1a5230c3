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
# 1.3: compositional validity on SMACT 2.2.1's data and Pauling rule (harness/data/smact_2.2.1_elements.json), the
#      release CDVAE pins; 1.2 used SMACT's oxidation_states_smact14 and a Pauling test that skipped like-charge
#      pairs with a missing electronegativity. Only comp_valid, valid, wdist_density, wdist_num_elems, sg_jsd and
#      sg_jsd_symmcd can differ (coverage is over every fingerprinted sample, stability over the seeded subset).
PROTOCOL_VERSION = "1.3"
FIRST_VERSION = "1.0"

# What each version changed, named by the re-score that carries a record over it from the version before
# (`bench rescore`): "stability" recomputes E_hull, stability, novelty and S.U.N. from the stored relaxed energies
# (harness/stability/rescore.py); "validity" recomputes compositional validity and the metrics over the valid
# samples from the per-sample table (harness/rescore_validity.py).
PROTOCOL_CHANGES = MappingProxyType({"1.1": "stability", "1.2": "stability", "1.3": "validity"})
RESCORES = ("stability", "validity")


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
# Runs of any other size carry this tier and are never ranked: a sample file brought to `bench evaluate`, which
# relaxes SAMPLE_FILE_N_RELAX of its samples unless asked otherwise, or `bench run --n-samples N` (custom_tier).
CUSTOM_TIER = "custom"
SAMPLE_FILE_N_RELAX = 100


def custom_tier(n_samples: int, n_relax: int | None = None) -> Tier:
    """A generator run of ``n_samples`` outside the tiers; ``n_relax`` relaxed, by default a tenth of the samples
    as in the tiers (at least one)."""
    return Tier(CUSTOM_TIER, n_samples, n_relax if n_relax is not None else max(1, n_samples // 10))

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

# What a metric is: the kinds of number (each printed its own way) and the families that compute them.
METRIC_KINDS = ("rate", "distance", "count", "seconds")
FAMILIES = ("distribution", "stability", "cost")


@dataclass(frozen=True)
class MetricSpec:
    """One metric a record carries: its key, the kind of number it is (how tables print it), which way is better
    (None: not ranked), its column header, and the metric family that computes it."""

    key: str
    kind: str  # "rate", "distance", "count" or "seconds"
    better: str | None  # "max", "min" or None
    header: str
    family: str  # "distribution" (harness/metrics), "stability" (harness/stability), "cost" (costs.cost_metrics)

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS or self.better not in ("max", "min", None) or self.family not in FAMILIES:
            raise ValueError(f"metric {self.key!r}: kind, better or family is not one the protocol knows")

    @property
    def title(self) -> str:
        """The header with its direction, as tables print it: ↑ higher is better, ↓ lower is better."""
        return self.header + {"max": " ↑", "min": " ↓", None: ""}[self.better]


# Every metric a record's `metrics` carries, in the order records and leaderboards list them; a value a run did not
# compute is null, never made up. The record schema (harness/schema/record.schema.json) lists the same keys.
METRIC_SPECS = (
    MetricSpec("struct_valid", "rate", "max", "struct", "distribution"),
    MetricSpec("comp_valid", "rate", "max", "comp", "distribution"),
    MetricSpec("valid", "rate", "max", "valid", "distribution"),
    MetricSpec("cov_recall", "rate", "max", "COV-R", "distribution"),
    MetricSpec("cov_precision", "rate", "max", "COV-P", "distribution"),
    MetricSpec("wdist_density", "distance", "min", "wdist ρ", "distribution"),
    MetricSpec("wdist_num_elems", "distance", "min", "wdist N_el", "distribution"),
    MetricSpec("sg_jsd", "distance", "min", "sg JSD", "distribution"),
    MetricSpec("sg_jsd_symmcd", "distance", "min", "sg JSD (SymmCD)", "distribution"),
    MetricSpec("stable_rate", "rate", "max", "stable", "stability"),
    MetricSpec("metastable_rate", "rate", "max", "metastable", "stability"),
    MetricSpec("unique_rate", "rate", "max", "unique", "stability"),
    MetricSpec("novel_rate", "rate", "max", "novel", "stability"),
    MetricSpec("sun_rate", "rate", "max", "SUN", "stability"),
    MetricSpec("n_relaxed", "count", None, "n relaxed", "stability"),
    MetricSpec("n_stable", "count", None, "n stable", "stability"),
    MetricSpec("n_sun", "count", None, "n SUN", "stability"),
    MetricSpec("seconds_per_sample", "seconds", "min", "s/sample", "cost"),
    MetricSpec("seconds_per_stable", "seconds", "min", "s/stable", "cost"),
    MetricSpec("seconds_per_sun", "seconds", "min", "s/SUN", "cost"),
)
METRIC_KEYS = tuple(spec.key for spec in METRIC_SPECS)


def family_specs(*families: str) -> tuple[MetricSpec, ...]:
    """The metrics the named families compute, in protocol order."""
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown metric family {sorted(unknown)}; the protocol's: {', '.join(FAMILIES)}")
    return tuple(spec for spec in METRIC_SPECS if spec.family in families)


def family_keys(*families: str) -> tuple[str, ...]:
    """The record keys the named families fill, in protocol order."""
    return tuple(spec.key for spec in family_specs(*families))


def novelty_split_name(dataset: str, split: str | None) -> str:
    """The split(s) novelty is judged against: ``split`` (default ``train``) with the protocol's substitutes."""
    parts: list[str] = []
    for part in (split or "train").split("+"):
        part = NOVELTY_SUBSTITUTES.get((dataset, part), part)
        if part and part not in parts:
            parts.append(part)
    return "+".join(parts)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def pending_changes(version: str, *, has_stability: bool) -> tuple[tuple[str, str], ...]:
    """(version, re-score) of the protocol changes after ``version`` that apply to a record, oldest first: a
    stability change applies only to a record with stability results. Refuses a version newer than this one."""
    if _version_key(version) > _version_key(PROTOCOL_VERSION):
        raise ValueError(f"protocol {version} is newer than this xtalbench's {PROTOCOL_VERSION}: upgrade xtalbench")
    return tuple(
        (changed, rescore) for changed, rescore in sorted(PROTOCOL_CHANGES.items(), key=lambda kv: _version_key(kv[0]))
        if _version_key(changed) > _version_key(version) and (rescore != "stability" or has_stability)
    )


def needs_rescore(version: str, rescore: str, *, has_stability: bool) -> bool:
    """Whether the next protocol change a record at ``version`` lacks is one ``rescore`` applies."""
    pending = pending_changes(version, has_stability=has_stability)
    return bool(pending) and pending[0][1] == rescore


def version_after_rescore(version: str, rescore: str, *, has_stability: bool) -> str:
    """The protocol version a record at ``version`` reaches when ``rescore`` re-scores it: past each pending change
    of that kind, up to the first pending change of another kind (the current version when none is left).

    Raises ``ValueError`` when a change of another kind must be applied first (the changes apply in order)."""
    if rescore not in RESCORES:
        raise ValueError(f"unknown re-score {rescore!r}; the protocol's: {', '.join(RESCORES)}")
    pending = pending_changes(version, has_stability=has_stability)
    for k, (changed, kind) in enumerate(pending):
        if kind == rescore:
            continue
        later = [v for v, other in pending[k:] if other == rescore]
        if later:
            raise ValueError(f"protocol {changed} changed {kind} before {later[0]} changed {rescore}: "
                             f"re-score {kind} first")
        versions = [FIRST_VERSION, *sorted(PROTOCOL_CHANGES, key=_version_key)]
        reached = versions[versions.index(changed) - 1]
        return max(version, reached, key=_version_key)
    return PROTOCOL_VERSION
