"""Time-boxed SymmBFN training in resumable chunks, shipping the checkpoint and curves after each chunk.

    python -m plugins.symmbfn.run_training --dataset perov5 --splits train --minutes 35

See ``plugins._asymmetric.run_training`` for the options and what is shipped where.
"""

from __future__ import annotations

from plugins._asymmetric.run_training import main as run_main
from plugins.symmbfn.training import KIND


def main(argv=None) -> int:
    return run_main(KIND, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
