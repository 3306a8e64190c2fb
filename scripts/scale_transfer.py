"""Record how much of okay patches' structure, by spatial period, every shipped autoencoder keeps.

A command line for :func:`weldlab.convergence.record_scale_transfer` (which
``scripts/ship_models.py`` also calls after shipping an autoencoder): the first ``--n``
validation okay patches, every AE shipped for the preset's datasets beside the blur
baseline, recorded in ``book/results/scale_transfer_<data>_<preset>.json`` for chapter 7::

    python scripts/scale_transfer.py --preset standard --data gdxray
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab.config import make_config  # noqa: E402
from weldlab.convergence import record_scale_transfer  # noqa: E402
from weldlab.datasets import build_or_load  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--data", default="gdxray", choices=("gdxray", "synthetic"))
    ap.add_argument("--n", type=int, default=500, help="validation okay patches (the first n)")
    args = ap.parse_args(argv)
    cfg = make_config(args.preset, data=args.data)
    record, path = record_scale_transfer(cfg, build_or_load(cfg), n=args.n)
    print(f"{len(record['models'])} autoencoders in {record['seconds']} s, recorded in {path}")


if __name__ == "__main__":
    main()
