import numpy as np
from pymatgen.core import Lattice, Structure

from harness.generator import Generator, TrainResult

CATIONS = ["Li", "Na", "K", "Rb"]
ANIONS = ["F", "Cl", "Br"]


class RockSaltDemo(Generator):
    name = "rocksalt-demo"
    version = "0.0.1"

    def train(self, dataset, config, out_dir, seed):
        path = out_dir / "demo.txt"
        path.write_text("nothing to learn\n")
        return TrainResult(path, {})

    def load(self, checkpoint, device):
        pass

    def sample(self, n, seed, batch_size):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            a = float(rng.uniform(4.0, 6.5))
            pair = [CATIONS[rng.integers(4)], ANIONS[rng.integers(3)]]
            out.append(Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), pair, [[0, 0, 0], [0.5, 0.5, 0.5]]))
        return out
