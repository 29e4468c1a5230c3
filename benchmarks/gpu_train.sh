#!/usr/bin/env bash
# On a GPU machine, from the repository root: bash benchmarks/gpu_train.sh [benchmarks/gpu_train.py options]
# Stops at once where torch sees no CUDA device; installs wheels carried in .whl/ and this checkout without the
# network; then trains (default: SymmBFN, SymmCD, SyMat on MP-20, preset paper, 9 minutes) into $OUT.
set -u
export PYTHONUNBUFFERED=1 XTALBENCH_CACHE="${XTALBENCH_CACHE:-/tmp/xtalbench-cache}"
python3 -c "import sys, torch; ok = torch.cuda.is_available(); print('torch', torch.__version__, 'cuda available:', ok,
torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 1)" \
  || { echo "gpu_train.sh: torch sees no CUDA device; nothing trained" >&2; exit 4; }
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_train.sh: installing .whl/*.whl failed" >&2; exit 3; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c "import importlib.metadata as m; m.distribution('xtalbench')" 2>/dev/null \
  || python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . \
  || { echo "gpu_train.sh: pip install -e . failed (its generators are found through its entry points)" >&2; exit 3; }
python3 -c "import pymatgen.core, spglib, pyxtal, harness.registry" \
  || { echo "gpu_train.sh: a package is missing; carry its wheel in .whl/ (README, 'Training on a GPU')" >&2; exit 5; }
exec python3 benchmarks/gpu_train.py "$@"
