"""Write the first N rows of a dataset split as a sample file (material_id, cif), byte-for-byte reproducible.

Issue #3 scores "the first 1,000 validation structures" against the test split; this makes that sample file,
whose sha256 the manifests `harness/data/external/data-<dataset>-val-first1000.json` pin:

    python benchmarks/split_head.py --dataset mp20 --split val --n 1000 --out mp20-val-first1000.csv.gz
    bench evaluate mp20-val-first1000.csv.gz --dataset mp20 --no-stability
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.datasets import get_card, split_head_csv, split_path
from harness.io import atomic_write_gzip, sha256_file
from harness.paths import data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    source = split_path(get_card(args.dataset), args.split, data_dir(args.data_dir))
    if source is None:
        parser.error(f"{args.dataset}/{args.split} is not present under {data_dir(args.data_dir)}")
    text = split_head_csv(source, args.n)
    atomic_write_gzip(args.out, text)  # gzip mtime 0: the same rows give the same bytes
    print(f"{args.out}: first {args.n} rows of {source}, sha256 {sha256_file(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
