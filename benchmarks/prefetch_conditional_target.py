"""Relax one target's samples of a running conditional run ahead of it, in the same folder with the same settings
(the run skips every structure whose result file exists). Recorded in the run's invocation ledger.

    XTALBENCH_DATA=... python benchmarks/prefetch_conditional_target.py RUN_DIR -4.0 100

Used for results/mp20/symmbfn/conditional-n100-seed0-30732aa640 (its ledger names this file by the path it was run
from, runs/prefetch_target.py). SymmBFN on MP-20 only, seed 0, batch 250, as that run.
"""
import json
import sys
from pathlib import Path

import torch

from harness.conditional import _AtTarget, target_name
from harness.costs import Invocation
from harness.io import sha256_text
from harness.registry import get_registry
from harness.runner import generate
from harness.stability import _result_path, relax_into
from harness.stability.relax import RelaxSettings
from harness.tasks import PropertyTarget

torch.set_num_threads(1)

run_dir, value, n = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
target = PropertyTarget("formation_energy_per_atom", value)
name = target_name(target)
with Invocation(run_dir, f"prefetch: sample and relax target {name} ahead of the run (runs/prefetch_target.py, "
                         "same code and settings, one worker)") as invocation:
    generator = get_registry().generator("symmbfn", "mp20")
    generator.load(get_registry().generator("symmbfn", "mp20").default_task_checkpoint("conditional"), "cpu")
    with invocation.phase("generation"):
        samples, _ = generate(_AtTarget(generator, target), n, 0, 250, run_dir / "targets" / name, False)
    settings = RelaxSettings.for_relaxer("chgnet")
    relax_dir = run_dir / "stability" / name / f"relax-{sha256_text(json.dumps(settings.as_dict(), sort_keys=True))[:12]}"
    relax_dir.mkdir(parents=True, exist_ok=True)
    pending = [s for s in samples if s.constructed and not _result_path(relax_dir, s.index).exists()]
    with invocation.phase("evaluation"):
        relax_into(relax_dir, [s.index for s in pending], [s.structure for s in pending], settings, progress=False)
print("done", len(pending))
