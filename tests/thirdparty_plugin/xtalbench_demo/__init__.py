"""A third-party xtalbench plugin: rock-salt crystals of random alkali halides."""
