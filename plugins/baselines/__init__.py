"""Baseline generators: ``trainset`` (the ceiling) and ``random`` (the floor)."""
