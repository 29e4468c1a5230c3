"""SymmCD (Levy et al. 2024): diffusion over the asymmetric unit with site symmetries, as an xtalbench plugin."""
