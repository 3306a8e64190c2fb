"""Records of the autoencoder's convergence experiments, and their table (chapter 4).

``scripts/ae_experiment.py`` trains one recipe for a fixed budget and writes a record
(JSON) per run to :data:`RECORDS`; :func:`read_records` loads them and
:func:`convergence_table` sets them side by side with the blur baseline's figures, as
chapter 4's ablation table.
"""

from __future__ import annotations

import json
from pathlib import Path

from .perturbations import TEST_INDICATIONS
from .results import RESULTS_DIR

#: Where the convergence runs are recorded (committed with the repository).
RECORDS = RESULTS_DIR / "convergence"

#: The synthetic indication types, in the order of the table's columns.
TYPES = TEST_INDICATIONS


def read_records(folder=RECORDS, names=None):
    """The recorded runs, oldest first.

    Parameters
    ----------
    folder : path
    names : sequence of str, optional
        Only these runs (record file stems), in this order.

    Returns
    -------
    list of dict
    """
    folder = Path(folder)
    if names is not None:
        paths = [folder / f"{n}.json" for n in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no such convergence record: {', '.join(missing)}")
    else:
        paths = sorted(folder.glob("*.json"), key=lambda p: json.loads(p.read_text()).get("created", ""))
    return [json.loads(p.read_text()) for p in paths]


def describe(variant):
    """A run's recipe in a few words (what differs from the plain recipe).

    Examples
    --------
    >>> from weldlab.convergence import describe
    >>> describe({"set": "sni", "scaling": "patch_mean", "okay_weight": 1.0, "clean_fraction": 0.0,
    ...           "batch_size": 16, "learning_rate": 0.001, "schedule": "cosine", "dropout_epochs": 0})
    'sni, patch mean, cosine'
    """
    parts = [variant["set"]]
    if variant.get("scaling", "none") != "none":
        parts.append(variant["scaling"].replace("_", " "))
    if variant.get("okay_weight", 1.0) != 1.0:
        parts.append(f"okay x{variant['okay_weight']:g}")
    if variant.get("clean_fraction", 0.0):
        parts.append(f"okay-only first {100 * variant['clean_fraction']:.0f} %")
    if variant.get("batch_size", 16) != 16:
        parts.append(f"batch {variant['batch_size']}")
    if variant.get("learning_rate", 1e-3) != 1e-3:
        parts.append(f"lr {variant['learning_rate']:g}")
    parts.append(variant.get("schedule", "cosine"))
    if variant.get("dropout_epochs"):
        parts.append(f"dropout {variant['dropout_epochs']} epochs")
    return ", ".join(parts)


def convergence_table(records):
    """The runs as one Markdown table, each beside the blur on the same patches.

    Columns: the recipe, the pairs trained and their rate, the median / 99th / 99.9th
    percentile of the okay patches' maximum ``|<r>|`` (AE, then the blur in brackets), the
    residual RMS in flat areas and at edges, the largest mean residual of an intensity
    decile, and for each synthetic type the fraction flagged at 0.1 % FPR (AUROC in
    brackets).

    Returns
    -------
    str
    """
    head = ("| run | recipe | pairs | pairs/s | max abs mean r: median | p99 | p99.9 | RMS flat | RMS edge "
            "| max abs bias | " + " | ".join(TYPES) + " |")
    lines = [head, "|" + " --- |" * (10 + len(TYPES))]
    for r in records:
        ae, blur = r["quality"]["autoencoder"], r["quality"]["blur"]
        cells = [r["name"], describe(r["variant"]), f"{r['pairs_trained']:,}", f"{r['pairs_per_second']:.1f}"]
        for key in ("median", "p99", "tail"):
            cells.append(f"{ae['max_mean'][key]:.4f} ({blur['max_mean'][key]:.4f})")
        cells += [f"{ae['rms_flat']:.4f} ({blur['rms_flat']:.4f})", f"{ae['rms_edge']:.4f} ({blur['rms_edge']:.4f})",
                  f"{ae['max_abs_bias']:.4f} ({blur['max_abs_bias']:.4f})"]
        det = r["indications"]["autoencoder"]
        cells += [f"{100 * det[t]['flagged']:.0f} % ({det[t]['auroc']:.2f})" for t in TYPES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
