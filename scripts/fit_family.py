"""Measure ``weldlab fit`` on a film family the shipped detector has not seen; record the run.

Usage::

    python scripts/fit_family.py --films 8 --label quick8 [--preset quick] [--test-from K] [-p NAME=VALUE ...]

Simulates ``--films + --test-films`` films (600 x 1200 px) read by another scanner
(:func:`weldlab.simulate.another_digitisation`: about twice the grain, less correlated,
16-bit), writes them as PNG files with their defect masks as a user would have them, fits a
detector to the first ``--films`` with ``weldlab fit``'s function, and checks the shipped
and the fitted detector on the held-out test films (:func:`weldlab.fit.held_out_check`:
okay patches, real defect patches, the five synthetic indication types, whole films) and
the fitted one also on films of the book's own digitisation (another family to it). The
record goes to ``book/results/fit/<label>.json``, which chapter 9 reads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from weldlab.config import parse_override  # noqa: E402
from weldlab.provenance import machine_description, provenance, write_json  # noqa: E402

#: The family's films: their size and the seeds of the films and of the other scanner.
HEIGHT, WIDTH, FILM_SEED, SCANNER_SEED, BOOK_SEED = 600, 1200, 2026, 7, 99


def family(n, seed=FILM_SEED):
    """``n`` simulated films read by the other scanner."""
    from weldlab.simulate import another_digitisation, simulate_radiographs

    films = simulate_radiographs(n, seed, HEIGHT, WIDTH)
    return [another_digitisation(r, np.random.default_rng([SCANNER_SEED, i])) for i, r in enumerate(films)]


def write_films(films, folder):
    """The films as 16-bit PNG files and their masks as 8-bit PNG files named alike."""
    import imageio.v3 as iio

    (folder / "films").mkdir(parents=True)
    (folder / "masks").mkdir()
    for r in films:
        iio.imwrite(folder / "films" / f"{r.name}.png", np.round(r.image * 65535).astype(np.uint16))
        iio.imwrite(folder / "masks" / f"{r.name}.png", r.mask.astype(np.uint8) * 255)
    return sorted((folder / "films").glob("*.png")), folder / "masks"


def main():
    from weldlab.detector import Detector
    from weldlab.fit import fit_detector, held_out_check, held_out_films
    from weldlab.simulate import simulate_radiographs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--films", type=int, default=8, help="films to fit on (a quarter calibrates)")
    parser.add_argument("--test-films", type=int, default=4, help="held-out films of the family to check on")
    parser.add_argument("--test-from", type=int, default=None,
                        help="index of the first held-out film (default --films: the films after the fitted ones); "
                             "fits of different sizes are compared on the same held-out films with the same value")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--label", required=True, help="the record's name under book/results/fit/")
    parser.add_argument("--n-okay", type=int, default=300)
    parser.add_argument("--n-synthetic", type=int, default=100)
    parser.add_argument("--keep", metavar="DIR", help="also copy the fitted detector folder here")
    args = parser.parse_args()
    overrides = dict(parse_override(t) for t in args.param)
    start = args.films if args.test_from is None else args.test_from
    films = family(max(start, args.films) + args.test_films)  # a film is the same whatever the count
    test_films = films[start : start + args.test_films]
    fit_films = (films[:start] + films[start + args.test_films :])[: args.films]
    with tempfile.TemporaryDirectory() as tmp:
        paths, masks = write_films(fit_films, Path(tmp))
        t0 = time.perf_counter()
        fitted = fit_detector(paths, Path(tmp) / "detector", masks=masks, preset=args.preset,
                              overrides=overrides, verbose=2)
        fit_seconds = time.perf_counter() - t0
        detectors = {"shipped": Detector.load(), "fitted": Detector.load(fitted.folder)}
        check = held_out_check(detectors, test_films, args.n_okay, args.n_synthetic)
        book_films = simulate_radiographs(args.test_films, BOOK_SEED, HEIGHT, WIDTH)
        other = held_out_films({"fitted": detectors["fitted"]}, book_films)["fitted"]
        if args.keep:
            shutil.copytree(fitted.folder, args.keep, dirs_exist_ok=True)
    record = fitted.record
    out = {
        "label": args.label, "films": args.films, "test_films": args.test_films, "test_from": start,
        "size": [HEIGHT, WIDTH],
        "seeds": {"films": FILM_SEED, "scanner": SCANNER_SEED, "book_films": BOOK_SEED},
        "preset": args.preset, "overrides": overrides, "fit": record["fit"],
        "fit_seconds": round(fit_seconds, 1), "training_seconds": record["wall_seconds"],
        "pairs_trained": record["epochs"] * record["steps_per_epoch"] * record["batch_size"],
        "pairs_per_second": record["patches_per_second"], "training_set": record["training_set"],
        "hyperparameters": record["hyperparameters"], "convergence": record["convergence"],
        "counts": {"train_okay": record["training_patches"]},
        "two_sided_thresholds": record["two_sided_thresholds"], "thresholds": record["thresholds"],
        "held_out": check, "book_family_films": other, "machine": machine_description(), **provenance(),
    }
    path = Path("book/results/fit") / f"{args.label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, out)
    ok = check["patches"]["okay"]
    print(f"written {path}: fit {fit_seconds:.0f} s; held-out okay patches sent to review: "
          + ", ".join(f"{k} {v['detector']:.1%}" for k, v in ok.items()))


if __name__ == "__main__":
    main()
