"""Time-boxed SymmCD training in resumable chunks, shipping the checkpoint and curves after each chunk.

    python -m plugins.symmcd.run_training --dataset mp20 --splits val+train_partial --minutes 120

See ``plugins._asymmetric.run_training`` for the options and what is shipped where.
"""

from __future__ import annotations

from plugins._asymmetric.run_training import main as run_main
from plugins.symmcd.training import KIND


def main(argv=None) -> int:
    return run_main(KIND, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
