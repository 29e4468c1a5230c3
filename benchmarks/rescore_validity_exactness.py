"""Is the validity re-score exact? With the rule a record was scored under swapped in, re-scoring it from its
per-sample table must give back its committed metrics bit for bit (protocol 1.3, `bench rescore --validity`).

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/rescore_validity_exactness.py RUN_DIR... [--all results]

Run it on records not yet re-scored (e.g. ``git archive <commit> results | tar -x -C DIR``, then ``--all DIR/results``).
The old rule is the compositional validity xtalbench scored with before 223a052 (SMACT's installed
``oxidation_states_smact14``, a Pauling test that skipped like-charge pairs with a missing electronegativity),
loaded from git at ``223a052^`` and used here only. Each record is re-scored without writing, every metric forced
to be recomputed (not kept), and compared with the record: comp_valid of each sample, the validity rates, the
metrics over the valid samples and the details they write. The same record is then re-scored under the protocol's
rule, without writing, to say what 1.3 changes. Needs the test split's features (shipped for MP-20 and Perov-5).
Writes ``results/benchmarks/rescore_validity_exactness.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLD_RULE_COMMIT = "223a052^"
DETAIL_KEYS = ("n_valid", "wdist")


def old_rule():
    """``comp_validity`` as xtalbench had it before 223a052, from git (needs SMACT with ``oxidation_states_smact14``)."""
    source = subprocess.run(["git", "show", f"{OLD_RULE_COMMIT}:harness/metrics/validity.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("validity_pre_223a052")
    exec(compile(source, f"{OLD_RULE_COMMIT}:harness/metrics/validity.py", "exec"), module.__dict__)
    return module.comp_validity


def _label(run_dir: Path) -> str:
    """``results/<dataset>/<plugin>/<run>``, also for a copy of the committed records outside the checkout."""
    parts = run_dir.parts
    return "/".join(parts[len(parts) - 1 - parts[::-1].index("results"):]) if "results" in parts else str(run_dir)


def check(run_dir: Path, rule, data_dir) -> dict:
    """The forced re-score under ``rule`` against the committed record, and what the protocol's rule changes."""
    import json

    from harness.rescore_validity import rescore_validity

    committed = json.loads((run_dir / "record.json").read_text())
    start = time.perf_counter()
    again = rescore_validity(run_dir, data_dir=data_dir, write=False, rule=rule, force=True)
    seconds = time.perf_counter() - start
    entry = again["details"]["metrics"]["rescored"][-1]
    keys = ("struct_valid", *entry["previous_metrics"])
    mismatched = {k: [committed["metrics"][k], again["metrics"][k]] for k in keys
                  if committed["metrics"][k] != again["metrics"][k]}
    old, new = committed["details"]["metrics"], again["details"]["metrics"]
    details_mismatched = [k for k in DETAIL_KEYS if old.get(k) != new.get(k)]
    if old["symprec"]["n_valid_samples_used"] != new["symprec"]["n_valid_samples_used"]:
        details_mismatched.append("symprec.n_valid_samples_used")
    start = time.perf_counter()
    protocol = rescore_validity(run_dir, data_dir=data_dir, write=False)
    protocol_seconds = time.perf_counter() - start
    last = protocol["details"]["metrics"]["rescored"][-1]
    return {
        "record": _label(run_dir),
        "protocol_version": committed["protocol_version"],
        "n_samples": committed["n_samples"],
        "old_rule": {
            "samples_whose_comp_valid_differs": entry["samples_changed"]["comp_valid"],
            "metrics_compared": list(keys),
            "metrics_differing": mismatched,
            "details_compared": [*DETAIL_KEYS, "symprec.n_valid_samples_used"],
            "details_differing": details_mismatched,
            "exact": not entry["samples_changed"]["comp_valid"] and not mismatched and not details_mismatched,
            "seconds": round(seconds, 2),
        },
        "protocol_rule": {
            "samples_changed": last["samples_changed"],
            "changed": {k: [last["previous_metrics"][k], protocol["metrics"][k]] for k in last["changed"]},
            "seconds": round(protocol_seconds, 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (or record.json files)")
    parser.add_argument("--all", dest="results_dir", type=Path, default=None,
                        help="every record under this folder whose reference features are shipped")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "rescore_validity_exactness.json")
    args = parser.parse_args(argv)

    from common import load_average, result_header

    from harness.io import atomic_write_json
    from harness.records import iter_record_paths

    runs = [p.parent if p.name == "record.json" else p for p in args.runs]
    if args.results_dir is not None:
        runs += [p.parent for p in iter_record_paths(args.results_dir) if p.parts[-4] in ("mp20", "perov5")]
    rule = old_rule()
    rows = []
    load_before = load_average()
    for run_dir in runs:
        row = check(run_dir.resolve(), rule, args.data_dir)
        rows.append(row)
        print(f"{row['record']}: old rule exact: {row['old_rule']['exact']} "
              f"({row['old_rule']['metrics_differing'] or ''}{row['old_rule']['details_differing'] or ''}); "
              f"1.3 changes {row['protocol_rule']['changed'] or 'nothing'}", flush=True)
    result = {
        **result_header("rescore_validity_exactness", argv),
        "old_rule": f"harness/metrics/validity.py at {OLD_RULE_COMMIT} (SMACT's installed oxidation_states_smact14)",
        "method": "rescore_validity(write=False, rule=old comp_validity, force=True) against the committed record; "
                  "then rescore_validity(write=False) under the protocol's rule",
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "all_exact": all(r["old_rule"]["exact"] for r in rows),
        "records": rows,
    }
    atomic_write_json(args.out, result)
    print("all exact:", result["all_exact"], "; wrote", args.out)
    return 0 if result["all_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
