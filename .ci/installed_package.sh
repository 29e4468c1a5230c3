#!/usr/bin/env bash
# A non-editable install (pip install .) into a fresh virtual environment, used from outside the checkout: an
# external set is evaluated with its manifest found from the package data, and a shipped checkpoint samples a run.
# The environment sees the interpreter's packages (torch, pymatgen ...: nothing is downloaded again), but xtalbench
# itself comes from the wheel built here. Run from the repository root; XTALBENCH_DATA must name the datasets.
set -euo pipefail
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m venv --system-site-packages "$work/venv"
# Built from a copy of the tracked files, so the checkout gets no build/ or egg-info of its own.
mkdir "$work/src" && git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work/src"
python -m pip wheel -q --no-deps --no-build-isolation -w "$work/wheel" "$work/src"
"$work/venv/bin/python" -m pip install -q --no-deps "$work"/wheel/xtalbench-*.whl
echo "wheel: $(du -h "$work"/wheel/xtalbench-*.whl | cut -f1)"
python benchmarks/split_head.py --dataset perov5 --split val --n 1000 --out "$work/perov5-val-first1000.csv.gz" >/dev/null
cd "$work"
"$work/venv/bin/python" - "$work" <<'PY'
import sys
import harness, plugins
for module in (harness, plugins):
    assert module.__file__.startswith(sys.argv[1]), f"{module.__name__} imported from {module.__file__}, not the wheel"
print("installed package:", harness.__file__)
PY
"$work/venv/bin/bench" evaluate perov5-val-first1000.csv.gz --dataset perov5 --no-stability --workers 2 --no-progress \
    --results results | tail -1
"$work/venv/bin/bench" run --plugin symmbfn --dataset perov5 --n-samples 20 --no-stability --workers 1 --threads 1 \
    --no-progress --results results | tail -1
"$work/venv/bin/python" - <<'PY'
import json, pathlib
records = {p.parent.parent.name: json.loads(p.read_text()) for p in pathlib.Path("results").glob("*/*/*/record.json")}
external = records["external-data-perov5-val-first1000"]
assert external["kind"] == "external" and external["external"]["manifest"] == "data-perov5-val-first1000", external["external"]
run = records["symmbfn"]
assert run["checkpoint"]["path"] == "plugins/symmbfn/checkpoints/perov5.pt", run["checkpoint"]["path"]
assert run["n_samples"] == 20 and run["metrics"]["struct_valid"] is not None
print("external manifest found:", external["external"]["manifest"], "| shipped checkpoint:", run["checkpoint"]["path"],
      f"sha {run['checkpoint']['sha256'][:12]}")
PY
