"""What checking every index file's sha256 costs when an index is opened (read-only: nothing is written).

    python bench/bench_verify.py data/stard-index --runs 3

Prints the time to hash the files alone, and ``load_index`` with the check (the digests computed on a second thread
while the files are parsed) and without it (the check replaced by a no-op), interleaved, medians of ``--runs``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    """Run the measurement and print one line per variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import index.store.load as load
    from index.store.manifest import file_digests, read_manifest

    manifest = read_manifest(args.index)
    size = sum(manifest.files.values()) / 1e6
    real_check = load.altered_file
    times: dict[str, list[float]] = {"sha256 only": [], "load, verified": [], "load, unverified": []}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        file_digests(args.index, manifest.files)
        times["sha256 only"].append(time.perf_counter() - t0)
        for name, check in (("load, verified", real_check), ("load, unverified", lambda *a: None)):
            load.altered_file = check
            t0 = time.perf_counter()
            load.load_index(args.index)
            times[name].append(time.perf_counter() - t0)
    load.altered_file = real_check
    for name, values in times.items():
        print(f"{name:>18}: {statistics.median(values):.2f} s (median of {args.runs}; {size:.0f} MB, "
              f"{len(manifest.files)} files)")


if __name__ == "__main__":
    main()
