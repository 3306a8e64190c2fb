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


#: The reconstruction goal of issue 22 (``book/method.md`` §8), on validation okay patches:
#: the 99.9th percentile of the patch maximum |<r>| at most the blur's, the median at most
#: ``MEDIAN_OVER_BLUR`` times the blur's, no intensity decile biased by more than
#: ``MAX_BIAS``; and at least ``MIN_FLAGGED`` of every synthetic type flagged at 0.1 % FPR.
MEDIAN_OVER_BLUR = 1.2
MAX_BIAS = 0.002
MIN_FLAGGED = 0.95


def goal(record):
    """Which parts of the reconstruction goal a recorded run meets.

    Returns
    -------
    dict of str -> bool
        ``tail``, ``median``, ``bias``, ``indications`` and ``all``.

    Examples
    --------
    >>> from weldlab.convergence import goal
    >>> blur = {"max_mean": {"median": 0.0067, "tail": 0.021}, "max_abs_bias": 0.0003}
    >>> ae = {"max_mean": {"median": 0.0075, "tail": 0.020}, "max_abs_bias": 0.001}
    >>> found = {t: {"flagged": 0.97} for t in TYPES}
    >>> goal({"quality": {"autoencoder": ae, "blur": blur}, "indications": {"autoencoder": found}})["all"]
    True
    """
    ae, blur = record["quality"]["autoencoder"], record["quality"]["blur"]
    out = {"tail": ae["max_mean"]["tail"] <= blur["max_mean"]["tail"],
           "median": ae["max_mean"]["median"] <= MEDIAN_OVER_BLUR * blur["max_mean"]["median"],
           "bias": ae["max_abs_bias"] <= MAX_BIAS,
           "indications": all(record["indications"]["autoencoder"][t]["flagged"] >= MIN_FLAGGED for t in TYPES)}
    out["all"] = all(out.values())
    return out


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
        return [json.loads(p.read_text()) for p in paths]
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return sorted(records, key=lambda r: r.get("created", ""))


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
        units = variant.get("loss_units", "scaled")
        name = {"patch_mean_spread": "patch mean, divided by the spread (0.114)"}.get(
            variant["scaling"], variant["scaling"].replace("_", " "))
        parts.append(name + (" (residuals in image units)" if units == "image" else ""))
    if variant.get("okay_weight", 1.0) != 1.0:
        parts.append(f"okay x{variant['okay_weight']:g}")
    if variant.get("code_weight", 1.0) != 1.0:
        parts.append(f"L_reg x{variant['code_weight']:g}")
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
    """The runs as one wide Markdown table, each beside the blur on the same patches.

    Columns: the recipe, the pairs trained and their rate, the median / 99th / 99.9th
    percentile of the okay patches' maximum ``|<r>|`` (AE, then the blur in brackets), the
    residual RMS in flat areas and at edges, the largest mean residual of an intensity
    decile, and for each synthetic type the fraction flagged at 0.1 % FPR (AUROC in
    brackets). For a terminal; the book shows :func:`residual_table` and
    :func:`indication_table`, which fit its page.

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
        cells += _flagged(r["indications"]["autoencoder"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _flagged(found):
    return [f"{100 * found[t]['flagged']:.0f} % ({found[t]['auroc']:.2f})" for t in TYPES]


def _same_blur(records):
    """The blur's figures, once: every run must have been judged on the same patches."""
    keys = {json.dumps(r["judged_on"], sort_keys=True) for r in records}
    if len(keys) != 1:
        raise ValueError(f"the runs were judged on different patches ({len(keys)} sets); tabulate them apart")
    return records[0]["quality"]["blur"], records[0]["indications"]["blur"]


def residual_table(records):
    """The okay-residual figures of each run, with the blur as the first row (the book's table).

    Columns: pairs trained and pairs per second, the median / 99th / 99.9th percentile of the
    okay patches' maximum ``|<r>|``, the residual RMS in flat areas and at edges, and the
    largest mean residual of an intensity decile.

    Returns
    -------
    str
    """
    blur, _ = _same_blur(records)

    def row(name, q, pairs="", rate=""):
        m = q["max_mean"]
        return (f"| {name} | {pairs} | {rate} | {m['median']:.4f} | {m['p99']:.4f} | {m['tail']:.4f} "
                f"| {q['rms_flat']:.4f} | {q['rms_edge']:.4f} | {q['max_abs_bias']:.4f} |")

    lines = ["| run | pairs | pairs/s | median | 99th pct | 99.9th pct | RMS flat | RMS edge | worst decile bias |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", row("*blur*", blur)]
    lines += [row(r["name"], r["quality"]["autoencoder"], f"{r['pairs_trained']:,}", f"{r['pairs_per_second']:.1f}")
              for r in records]
    return "\n".join(lines)


def indication_table(records):
    """Each run's share of every synthetic type flagged at 0.1 % FPR (AUROC in brackets).

    The blur is the first row.

    Returns
    -------
    str
    """
    _, blur = _same_blur(records)
    names = [t.replace("_", " ") for t in TYPES]
    lines = ["| run | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(TYPES),
             "| *blur* | " + " | ".join(_flagged(blur)) + " |"]
    lines += ["| " + r["name"] + " | " + " | ".join(_flagged(r["indications"]["autoencoder"])) + " |" for r in records]
    return "\n".join(lines)


def recipes(records):
    """Each run's recipe as a Markdown list (the key to the tables' run names)."""
    return "\n".join(f"- **{r['name']}**: {describe(r['variant'])}, {r['pairs_trained']:,} pairs" for r in records)


#: The speed levers of the training step (``scripts/bench_step.py``).
STEP_SPEED = RESULTS_DIR / "step_speed.json"


def speed_table(path=STEP_SPEED):
    """The measured speed levers of the AE training step as a Markdown table.

    Returns
    -------
    str
        One row per setting: XLA, oneDNN, precision, seconds per step of 16 pairs and
        pairs per second.
    """
    data = read_speed(path)
    lines = ["| XLA (jit_compile) | oneDNN kernels | precision | s per step | pairs/s |", "| --- | --- | --- | ---: | ---: |"]
    for r in data["rows"]:
        xla = {"auto": f"auto ({'on' if r['jit_resolved'] else 'off'})", "on": "on", "off": "off"}[r["jit"]]
        lines.append(f"| {xla} | {'on' if r['onednn'] == '1' else 'off'} | {r['precision']} "
                     f"| {r['seconds_per_step']:.2f} | {r['pairs_per_second']:.1f} |")
    return "\n".join(lines)


def plot_learning_curves(records, ax=None):
    """Validation okay loss (``L_ok``) against training pairs, one line per run.

    Parameters
    ----------
    records : list of dict
        From :func:`read_records`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(8, 4), layout="constrained")[1]
    for i, r in enumerate(records):
        per_epoch = r["variant"]["steps_per_epoch"] * r["variant"]["batch_size"]
        h = r["history"]
        line = "-o" if i < 10 else "--s"  # the colour cycle has ten colours
        ax.plot([e["epoch"] * per_epoch for e in h], [e["val_ok_loss"] for e in h], line, ms=3,
                label=r["name"])  # the recipes are listed by name beside the tables (:func:`recipes`)
    ax.set_xscale("log")  # 3,200-pair runs beside 36,000-pair ones
    ax.set_yscale("log")
    ax.set_xlabel("training pairs")
    ax.set_ylabel("validation L_ok (mean squared residual)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lines, not on them
    return ax


def read_speed(path=STEP_SPEED):
    """The recorded speed levers (``scripts/bench_step.py``'s JSON)."""
    return json.loads(Path(path).read_text())


def okay_figures(record):
    """A run's three headline okay-residual figures.

    The median and 99.9th percentile of the okay patches' maximum ``|<r>|``, and the
    largest mean residual of an intensity decile.

    Returns
    -------
    tuple of float
        ``(median, tail, bias)``.
    """
    q = record["quality"]["autoencoder"]
    return q["max_mean"]["median"], q["max_mean"]["tail"], q["max_abs_bias"]


def better_on_all_three(record, reference):
    """Whether a run's :func:`okay_figures` are all below the reference run's.

    Examples
    --------
    >>> from weldlab.convergence import better_on_all_three
    >>> def run(m, t, b):
    ...     return {"quality": {"autoencoder": {"max_mean": {"median": m, "tail": t}, "max_abs_bias": b}}}
    >>> better_on_all_three(run(0.01, 0.03, 0.001), run(0.02, 0.06, 0.006))
    True
    >>> better_on_all_three(run(0.01, 0.07, 0.001), run(0.02, 0.06, 0.006))
    False
    """
    return all(a < b for a, b in zip(okay_figures(record), okay_figures(reference)))


def aurocs(record):
    """The AUROC of each synthetic type (in :data:`TYPES` order) for a run's autoencoder."""
    found = record["indications"]["autoencoder"]
    return [found[t]["auroc"] for t in TYPES]


def findings(records, reference="base"):
    """What the recorded runs show, as Markdown bullet points generated from their numbers.

    Each run is compared with the ``reference`` run (the plain recipe) on the median and the
    99.9th percentile of the okay patches' maximum ``|<r>|`` and on the largest decile bias
    (a run of the reference's own recipe and budget is said to show the spread between runs);
    then the runs that meet the goal (:func:`goal`) are named, and the run with the lowest
    99.9th percentile.

    Returns
    -------
    str
    """
    by_name = {r["name"]: r for r in records}
    if reference not in by_name:
        raise ValueError(f"reference: no recorded run named {reference!r}; have {sorted(by_name)}")
    ref = by_name[reference]["quality"]["autoencoder"]
    blur = by_name[reference]["quality"]["blur"]
    lines = [f"- The plain recipe ({describe(by_name[reference]['variant'])}, {by_name[reference]['pairs_trained']:,} "
             f"pairs): median {ref['max_mean']['median']:.4f}, {ref['max_mean']['median'] / blur['max_mean']['median']:.1f} "
             f"times the blur's {blur['max_mean']['median']:.4f}; 99.9th percentile {ref['max_mean']['tail']:.4f} against "
             f"{blur['max_mean']['tail']:.4f}; the worst intensity decile off by {ref['max_abs_bias']:.4f}."]
    m0, t0, b0 = okay_figures(by_name[reference])
    for r in records:
        if r["name"] == reference:
            continue
        m, t, b = okay_figures(r)
        better = [m < m0, t < t0, b < b0]
        verdict = "better on all three" if all(better) else "worse on all three" if not any(better) else "mixed"
        if describe(r["variant"]) == describe(by_name[reference]["variant"]) and r["pairs_trained"] == by_name[
                reference]["pairs_trained"]:
            verdict = "the same recipe and budget again, so these ratios are the spread between two runs"
        lines.append(f"- {r['name']} ({describe(r['variant'])}, {r['pairs_trained']:,} pairs): median {m:.4f} "
                     f"({m / m0:.2f} times the plain recipe's), 99.9th "
                     f"percentile {t:.4f} ({t / t0:.2f} times), decile bias {b:.4f}: {verdict}.")
    met = [r["name"] for r in records if goal(r)["all"]]
    lines.append(f"- Runs that meet the goal: {', '.join(met)}." if met else
                 "- No run meets the goal yet (99.9th percentile at most the blur's, median within "
                 f"{MEDIAN_OVER_BLUR:g} times the blur's, no decile biased by more than {MAX_BIAS:g}, at least "
                 f"{100 * MIN_FLAGGED:.0f} % of every synthetic type flagged).")
    best = min(records, key=lambda r: okay_figures(r)[1])
    lines.append(f"- Lowest 99.9th percentile: {best['name']} ({describe(best['variant'])}).")
    return "\n".join(lines)
