"""SymmBFN (Ruple et al. 2025): a symmetry-aware Bayesian Flow Network for crystals, as an xtalbench plugin."""

# The one version of this plugin (its hooks register it, its generator class carries it, records print it);
# bumped whenever the samples drawn for a seed change.
VERSION = "0.3.0"
