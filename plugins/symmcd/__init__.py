"""SymmCD (Levy et al. 2024): diffusion over the asymmetric unit with site symmetries, as an xtalbench plugin."""

# The one version of this plugin (its hooks register it, its generator class carries it, records print it);
# bumped whenever the samples drawn for a seed change.
VERSION = "0.2.0"
