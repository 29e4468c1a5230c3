"""SymmBFN (Ruple et al. 2025): a symmetry-aware Bayesian Flow Network for crystals, as an xtalbench plugin."""
