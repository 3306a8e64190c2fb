"""What a perfect reconstruction would catch of the synthetic test types on simulated films.

On simulated films the film before its grain (``noise_free``, :func:`weldlab.simulate.simulate_radiograph`)
is known, so the best any reconstruction can do is known too: reproduce the okay film and
nothing else. Its residual on an okay patch is the grain alone; on a patch with a synthetic
indication, the grain plus the indication. This measures, on okay patches of new simulated films
(the first of chapter 5's, :func:`weldlab.datasets.new_films`), the share of each synthetic type
flagged under the paper's rule (9 x 9 window statistics, OR rule, thresholds at 0.1 % FPR on the
okay patches of the calibration films) by

- ``ideal``: that reconstruction (thresholds from its own okay residuals);
- ``ae_complete_removal``: the shipped autoencoder's own okay residual plus the indication whole,
  at its shipped thresholds (its okay fit, with a removal that left nothing of the indication);
- ``ae``: the shipped autoencoder as it is, at its shipped thresholds;
- ``blur``: the classical baseline (thresholds from its okay residuals on the calibration films).

The gap between ``ideal`` and ``ae_complete_removal`` is what the autoencoder's okay fit costs;
between ``ae_complete_removal`` and ``ae``, what its reconstruction of the indications costs.
Each type is read both ways (:data:`weldlab.perturbations.AMPLITUDE_READINGS` "before" and
"after" the smoothing).

    python scripts/ideal_reconstruction.py --films 50 25

About 3 minutes on 2 CPU cores at the defaults; writes
``book/results/ideal_reconstruction_synthetic_<preset>.json`` (chapter 4 shows it;
:func:`weldlab.convergence.read_ideal_reconstruction` reads it).

With ``--digitisation other`` the same films are read by another scanner
(:func:`weldlab.simulate.another_digitisation`, the film family of ``scripts/fit_family.py``)
and ``--model`` names the detector judged (a folder ``weldlab fit`` wrote, its thresholds
calibrated on that family); the perfect reconstruction is still the film before its grain, so
its residual is the grain plus the other scanner's noise. Written to
``ideal_reconstruction_synthetic_<preset>_other.json`` (chapter 9 shows it).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from weldlab.config import make_config  # noqa: E402
from weldlab.convergence import ideal_reconstruction_path  # noqa: E402
from weldlab.datasets import build_or_load, new_films  # noqa: E402
from weldlab.evaluate import background_residuals, complete_removal_residuals, reconstruction_residuals  # noqa: E402
from weldlab.patches import crop, extract_patches  # noqa: E402
from weldlab.perturbations import TEST_INDICATIONS, GeneratedPerturbations, apply_perturbation  # noqa: E402
from weldlab.provenance import provenance, write_json  # noqa: E402
from weldlab.residuals import patch_maxima  # noqa: E402
from weldlab.sets import SHIPPED  # noqa: E402
from weldlab.simulate import another_digitisation  # noqa: E402
from weldlab.thresholds import ResidualThresholds, from_record  # noqa: E402
from weldlab.trained import TrainedModel, shipped_for  # noqa: E402

#: Seed of the indications and of the okay patches they go into (with the preset's seed).
STREAM = 31
#: Seed of the other scanner's noise (with the film's index).
SCANNER_STREAM = 32
PER_TYPE = 200


def films_and_ideal(cfg, n, per_film, digitisation="book"):
    """Okay patches of ``n`` new films and the same patches cut from the films before their grain.

    One film at a time, so that only one film's intermediate maps are held. With
    ``digitisation="other"`` each film is read by another scanner first (seeded by its
    index), and its patches are cut from that reading at the same places.
    """
    x, ideal, film = [], [], []
    for i in range(n):
        layers = []
        (radiograph,), (okay,) = new_films(cfg, n, per_film, indices=[i], layers=layers)
        patches = okay["patches"]
        if digitisation == "other":
            other = another_digitisation(radiograph, np.random.default_rng([SCANNER_STREAM, i]))
            patches = extract_patches(other.image.astype(np.float32), okay["centres"], okay["theta"])
        x.append(patches)
        ideal.append(extract_patches(layers[0]["noise_free"].astype(np.float32), okay["centres"], okay["theta"]))
        film += [i] * len(okay["patches"])
    return np.concatenate(x), np.concatenate(ideal), np.asarray(film)


def flagged(residual, thresholds):
    """Share of patches that ``thresholds`` flag (the paper's OR rule over the 9 x 9 windows)."""
    return float(np.mean(thresholds.score(*patch_maxima(residual)) > thresholds.cut))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--films", type=int, nargs=2, default=(50, 25), metavar=("CALIBRATION", "TEST"))
    parser.add_argument("--per-film", type=int, default=40)
    parser.add_argument("--digitisation", choices=("book", "other"), default="book",
                        help="the films as the book's simulator reads them, or read by another scanner")
    parser.add_argument("--model", type=Path, default=None,
                        help="the autoencoder judged, with its thresholds (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    cfg = make_config(args.preset, data="synthetic")
    key = build_or_load(cfg).manifest["dataset_key"]
    folder = args.model or shipped_for("ae", SHIPPED["ae"], 0, cfg.data, key)
    if folder is None:
        raise SystemExit(f"no AE {SHIPPED['ae']} seed 0 is shipped for the simulated datasets {key}")
    ae = TrainedModel.load(folder, "ae")
    n_cal, n_test = args.films
    x, ideal, film = films_and_ideal(cfg, n_cal + n_test, args.per_film, args.digitisation)
    cal, test = np.flatnonzero(film < n_cal), np.flatnonzero(film >= n_cal)
    print(f"{len(cal)} calibration and {len(test)} test okay patches ({time.perf_counter() - t0:.0f} s)")

    okay = {"ideal": crop(x) - crop(ideal), "ae": reconstruction_residuals(ae.model, x),
            "blur": background_residuals(x)}
    thresholds = {name: ResidualThresholds.calibrate(*patch_maxima(r[cal]), cfg.fpr) for name, r in okay.items()}
    thresholds["ae"] = from_record(ae.record)  # the model's own thresholds, as `weldlab scan` uses them
    record = {"preset": cfg.preset, "data": cfg.data, "dataset_key": key, "fpr": cfg.fpr,
              "model": ({"training_set": SHIPPED["ae"], "seed": 0} if args.model is None
                        else {"folder": args.model.name, "source": ae.record.get("source")}),
              "digitisation": args.digitisation,
              "films": {"calibration": n_cal, "test": n_test}, "per_film": args.per_film,
              "patches": {"calibration": int(len(cal)), "test": int(len(test))}, "per_type": PER_TYPE,
              "thresholds": {k: {"t_mean": t.t_mean, "t_std": t.t_std} for k, t in thresholds.items()},
              "okay_test_flagged": {k: flagged(okay[k][test], thresholds[k]) for k in okay}, "types": {}}
    rng = np.random.default_rng([cfg.seed, STREAM])
    for reading in ("before", "after"):
        for kind in TEST_INDICATIONS:
            base = rng.choice(test, PER_TYPE, replace=False)
            delta, support = GeneratedPerturbations(kind, PER_TYPE, seed=STREAM, reading=reading)[np.arange(PER_TYPE)]
            perturbed = apply_perturbation(x[base], delta, support)
            pasted = perturbed - x[base]  # the indication as it is in the patch (after clipping)
            row = {"peak_median": float(np.median(np.abs(crop(pasted)).reshape(PER_TYPE, -1).max(1))),
                   "ideal": flagged(complete_removal_residuals(okay["ideal"][base], pasted), thresholds["ideal"]),
                   "ae_complete_removal": flagged(complete_removal_residuals(okay["ae"][base], pasted),
                                                  thresholds["ae"]),
                   "ae": flagged(reconstruction_residuals(ae.model, perturbed), thresholds["ae"]),
                   "blur": flagged(background_residuals(perturbed), thresholds["blur"])}
            record["types"][f"{kind} ({reading})"] = row
            print(f"{kind} ({reading}):", {k: round(v, 3) for k, v in row.items()})
    record["seconds"] = round(time.perf_counter() - t0, 1)
    path = args.out or ideal_reconstruction_path(cfg.results_root, cfg.preset, args.digitisation)
    write_json(path, {**record, **provenance()})
    print(f"wrote {path} ({record['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
