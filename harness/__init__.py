"""xtalbench: a fixed, versioned evaluation protocol for generative models of inorganic crystals."""

__version__ = "0.1.0"
