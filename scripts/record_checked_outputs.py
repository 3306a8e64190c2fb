"""Record the chapters' checked outputs of a book build as the reference the tests compare with.

Run it after a build whose outputs changed on purpose (a new simulator, new datasets, a
chapter that prints something else), for each data source the tests build:

    weldlab book --preset quick --data synthetic && \\
        python scripts/record_checked_outputs.py --preset quick --data synthetic
    weldlab book --preset quick --data gdxray && \\
        python scripts/record_checked_outputs.py --preset quick --data gdxray

and commit ``book/results/checked_outputs.json`` with the change that caused it
(:mod:`weldlab.book.checks`).
"""

import argparse
from pathlib import Path

from weldlab.book import record_outputs, repo_root
from weldlab.config import RESULTS_ROOT


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "gdxray"))
    parser.add_argument("--build-dir", type=Path, help="the build's folder (default: <repository>/_build)")
    args = parser.parse_args(argv)
    root = repo_root()
    executed = (args.build_dir or root / "_build") / args.data / args.preset / "executed"
    path = record_outputs(executed, args.preset, args.data, root / RESULTS_ROOT)
    print(f"recorded the checked outputs of {executed} in {path}")


if __name__ == "__main__":
    main()
