"""How much of a smooth bump an autoencoder leaves in its residual, by the bump's size.

A disc of diameter d, smoothed by a Gaussian PSF (sigma px) and scaled to a peak of 0.05, is
added at the centre of validation okay patches; the share of that peak left in the residual
(the 9 x 9 mean of ``residual(x + bump) - residual(x)`` at the bump's centre, over the bump's
peak) is what the residual tests can see. An autoencoder that removed the bump would leave
100 %; one that reproduced it, 0 %. The classical blur (sigma 4 px) is measured alongside.

The question it answers (issue 22): do the autoencoders reproduce bumps wider than their
receptive field (``weldlab.models.receptive_field``), whatever their recipe?

    python scripts/removal_by_size.py weldlab/pretrained/ae/sni/seed0 \\
        training/checkpoints/gdxray/standard/experiments/ok10_long
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from weldlab.config import RESULTS_ROOT, make_config  # noqa: E402
from weldlab.datasets import build_or_load  # noqa: E402
from weldlab.evaluate import background_residuals, reconstruction_residuals  # noqa: E402
from weldlab.geometry import CROP, PATCH  # noqa: E402
from weldlab.models import receptive_field  # noqa: E402
from weldlab.provenance import provenance, write_json  # noqa: E402
from weldlab.trained import TrainedModel  # noqa: E402

PEAK = 0.05


def bump(diameter, sigma):
    """A disc of ``diameter`` px at the patch centre, smoothed, with peak :data:`PEAK`; shape (192, 192)."""
    yy, xx = np.mgrid[:PATCH, :PATCH] - PATCH // 2
    disc = ((yy**2 + xx**2) <= (diameter / 2) ** 2).astype(np.float64)
    out = ndi.gaussian_filter(disc, sigma)
    return (PEAK * out / out.max()).astype(np.float32)


def left_in_residual(residual_of, okay, delta):
    """Mean share of the bump's peak in the 9 x 9 window at its centre of the residual."""
    c = CROP // 2
    diff = residual_of(okay + delta) - residual_of(okay)
    return float(diff[:, c - 4 : c + 5, c - 4 : c + 5].mean() / PEAK)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", metavar="FOLDER", help="trained autoencoder folders")
    ap.add_argument("--patches", type=int, default=100, help="validation okay patches")
    ap.add_argument("--diameters", type=int, nargs="+", default=[8, 16, 24, 36, 48, 64])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[9.0, 3.0])
    ap.add_argument("--out", default=f"{RESULTS_ROOT}/removal_by_size.json")
    args = ap.parse_args()
    cfg = make_config("standard", data="gdxray", progress=False)
    okay = np.asarray(build_or_load(cfg)["val_okay"][: args.patches], np.float32)
    scorers = {"blur": background_residuals}
    for folder in args.models:
        model = TrainedModel.load(folder, "ae").model
        scorers[os.path.basename(os.path.normpath(folder))] = lambda x, m=model: reconstruction_residuals(m, x)
    rows = []
    for sigma in args.sigmas:
        for d in args.diameters:
            delta = bump(d, sigma)
            row = {"sigma": sigma, "diameter": d,
                   **{name: left_in_residual(f, okay, delta) for name, f in scorers.items()}}
            rows.append(row)
            print(", ".join(f"{k} {v:.2f}" if isinstance(v, float) and k not in ("sigma",) else f"{k} {v}"
                            for k, v in row.items()), flush=True)
    write_json(args.out, {"peak": PEAK, "patches": len(okay), "receptive_field": receptive_field(),
                          "models": args.models, "rows": rows, **provenance()})
    print(f"recorded in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
