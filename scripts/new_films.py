"""Record how the shipped simulated-film AE's calibration carries over to films it has not seen.

Chapter 5 shows the record (``book/results/new_films_synthetic_<preset>.json``): the okay
patches that the shipped autoencoder's thresholds (and the blur baseline's) flag on the
validation films they were calibrated on, on the test films, and on new simulated films
that no dataset holds, film by film (:func:`weldlab.convergence.record_new_films`).

    python scripts/new_films.py --preset standard

About 6 minutes on 2 CPU cores at the defaults (150 films, 40 okay patches each).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab.config import make_config  # noqa: E402
from weldlab.convergence import NEW_FILMS, PATCHES_PER_NEW_FILM, record_new_films  # noqa: E402
from weldlab.datasets import build_or_load  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--films", type=int, default=NEW_FILMS, help="new films to simulate")
    parser.add_argument("--per-film", type=int, default=PATCHES_PER_NEW_FILM, help="okay patches from each")
    args = parser.parse_args(argv)
    cfg = make_config(args.preset, data="synthetic")
    _, path = record_new_films(cfg, build_or_load(cfg), args.films, args.per_film)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
