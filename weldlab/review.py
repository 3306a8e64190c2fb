"""Who sends an input to a human: the reviewers of chapter 10, their rates and their tables.

The reviewers: the input checks alone, the autoencoder with the paper's OR rule and with the
two-sided rule, the detector that combines the two-sided rule with the input checks
(:class:`weldlab.detector.Detector`), and the supervised CNN. :func:`chapter_reviewers` loads
(or trains) and calibrates them; :func:`review_rates` measures how often each sends each kind
of patch to review at its threshold for the configured false positive rate, and
:func:`film_reviews` does the same for whole images (:mod:`weldlab.unexpected` makes the
inputs). The question that matters: does the system hand the input to a human?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .figures import axes_or_new, markdown_table
from .geometry import PATCH

#: The share of an unexpected kind that the detector should send to review (chapter 10's goal).
REVIEW_GOAL = 0.99
#: A CNN whose best validation loss is above this has not learned (ln 2 = 0.693 is chance).
CNN_CHANCE_LOSS = 0.68


@dataclass(frozen=True)
class Reviewers:
    """The models that decide whether an input goes to a human, calibrated on one dataset.

    Attributes
    ----------
    autoencoder, cnn : weldlab.trained.TrainedModel
        The AE trained with SNI perturbations and the CNN trained on D+SNI.
    detector : weldlab.detector.Detector
        The autoencoder's two-sided rule with the film- and patch-level input checks.
    calibration : dict
        :data:`weldlab.detector.CALIBRATION_KEYS` -> values (the paper's thresholds, the
        two-sided ones, the patch and film input ranges).
    cnn_threshold : float
        The CNN's threshold on P(not okay), for the configured false positive rate.
    """

    autoencoder: object
    cnn: object
    detector: object
    calibration: dict
    cnn_threshold: float

    def calibrated_on(self, datasets):
        """Whether the calibration was made on ``datasets``' validation patches.

        True for models trained by the run, and for shipped models of the same preset and
        data; a shipped model used with another preset's datasets (the simulated-film
        autoencoder in the ``quick`` preset) was calibrated on other patches, so these
        validation patches are new data to it.
        """
        return self.autoencoder.record.get("dataset_key") == datasets.manifest["dataset_key"]

    @property
    def cnn_learned(self):
        """False if the CNN's best validation loss is at chance level (:data:`CNN_CHANCE_LOSS`)."""
        return cnn_chance_note(self.cnn.record) is None

    def notes(self):
        """What a reader must know before trusting the reviewers' rates (a list of sentences).

        A CNN at chance level (:attr:`cnn_learned` False) gets a note: its column shows an
        untrained classifier.
        """
        note = cnn_chance_note(self.cnn.record)
        return [] if note is None else [f"{note} Its column shows an untrained classifier, not what a trained one does."]

    def rates(self, inputs):
        """:func:`review_rates` of every reviewer for each kind of patch in ``inputs``."""
        return review_rates(inputs, self.detector, self.calibration["thresholds"], self.cnn.model, self.cnn_threshold)

    def films(self, films):
        """:func:`film_reviews` of the detector and the CNN for each image in ``films``."""
        return film_reviews(films, self.detector, self.cnn.model, self.cnn_threshold)

    def summary(self):
        """The thresholds in a few lines of text."""
        th, cal = self.calibration["thresholds"], self.calibration
        typical = cal["input_ranges"]["patch"]["typicality"]
        return "\n".join([
            f"AE (SNI): t_mean {th['t_mean']:.4f}, t_std {th['t_std']:.4f}",
            f"          t_quiet {cal['two_sided_thresholds']['t_quiet']:.4f} (the two-sided rule)",
            f"input checks: typicality threshold {typical['threshold']:.2f} (from {typical['n']} okay training patches)",
            f"CNN (D+SNI): threshold on P(not okay) {self.cnn_threshold:.4f}",
        ])


def cnn_chance_note(record):
    """A sentence saying that a CNN has not learned, or None when it has.

    Parameters
    ----------
    record : dict
        The CNN's training record (``best_val_loss``).

    Returns
    -------
    str or None
        Said when the best validation loss is above :data:`CNN_CHANCE_LOSS` (a coin toss
        scores ln 2 = 0.693).

    Examples
    --------
    >>> from weldlab.review import cnn_chance_note
    >>> cnn_chance_note({"best_val_loss": 0.41}) is None
    True
    >>> cnn_chance_note({"best_val_loss": 0.6921})[:48]
    'this CNN has not learned: its best validation lo'
    """
    loss = record.get("best_val_loss", 0)
    if loss <= CNN_CHANCE_LOSS:
        return None
    return (f"this CNN has not learned: its best validation loss is {loss:.3f}, chance level (ln 2 = 0.693); "
            "the paper's CNNs were trained to convergence.")


def chapter_reviewers(cfg, datasets, films, films_source=None):
    """Chapter 10's reviewers: its AE (SNI) and CNN (D+SNI), loaded or trained, calibrated.

    The AE's calibration and the CNN's threshold come from the models' records where they
    hold one (the shipped models), else they are measured on ``datasets`` and ``films`` at
    ``cfg.fpr`` (:func:`weldlab.detector.detector_for`).

    Parameters
    ----------
    cfg : weldlab.config.Config
    datasets : weldlab.datasets.PatchDatasets
    films : sequence of ndarray, each shape (H, W)
        The training radiographs (the film-level input ranges).
    films_source : str, optional
        What the films are (default: "<data> training films").

    Returns
    -------
    Reviewers
    """
    from .detector import detector_for
    from .evaluate import cnn_scores
    from .thresholds import ProbabilityThreshold, from_record
    from .training import chapter_models

    ae, cnn = (chapter_models(cfg, datasets, kind, conf, seeds=cfg.seeds[:1])[0]
               for kind, conf in (("ae", "sni"), ("cnn", "D+sni")))
    detector, calibration = detector_for(ae, datasets, films, fpr=cfg.fpr,
                                         films_source=films_source or f"{cfg.data} training films")
    threshold = (from_record(cnn.record) if "threshold" in cnn.record
                 else ProbabilityThreshold.calibrate(cnn_scores(cnn.model, datasets["val_okay"]), cfg.fpr))
    return Reviewers(ae, cnn, detector, calibration, float(threshold.probability))


def detection_rates(inputs, scorers):
    """Fraction of each kind of input flagged by each detector.

    Parameters
    ----------
    inputs : dict
        name -> patches (n, 192, 192).
    scorers : dict
        detector name -> callable ``patches -> scores``, where a score above 1 means
        flagged (an autoencoder: its thresholds' score; the CNN: ``probability /
        threshold``).

    Returns
    -------
    dict
        name -> ``{"n", <detector>: fraction flagged, ...}``.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.review import detection_rates
    >>> x = {"bright": np.ones((4, 192, 192)), "dark": np.zeros((2, 192, 192))}
    >>> detection_rates(x, {"mean": lambda p: 2 * p.mean(axis=(1, 2))})
    {'bright': {'n': 4, 'mean': 1.0}, 'dark': {'n': 2, 'mean': 0.0}}
    """
    out = {}
    for name, x in inputs.items():
        row = {"n": int(len(x))}
        for key, fn in scorers.items():
            row[key] = float(np.mean(np.asarray(fn(x)) > 1))
        out[name] = row
    return out


def cnn_film_score(cnn, image, threshold, batch_size=32):
    """The CNN applied to a whole image: its largest ``probability / threshold``.

    Over 192 px patches tiling the image (the last row and column aligned with its edges).

    Parameters
    ----------
    cnn : keras.Model
    image : ndarray, shape (H, W), H and W >= 192
    threshold : float
        The CNN's probability threshold (0.1 % FPR on okay validation patches).

    Returns
    -------
    float
        Above 1: some patch of the image is flagged.
    """
    from .evaluate import cnn_scores

    image = np.asarray(image, np.float32)
    h, w = image.shape
    if min(h, w) < PATCH:
        raise ValueError(f"image: expected at least {PATCH} px per side, got {image.shape}")
    rows = sorted({*range(0, h - PATCH + 1, PATCH), h - PATCH})
    cols = sorted({*range(0, w - PATCH + 1, PATCH), w - PATCH})
    patches = np.stack([image[r : r + PATCH, c : c + PATCH] for r in rows for c in cols])
    return float(cnn_scores(cnn, patches, batch_size).max() / threshold)


#: The columns of :func:`review_rates`: who sends an input to a human.
REVIEWERS = {
    "inputs": "input checks alone",
    "ae_paper": "AE, paper's OR rule",
    "ae_two_sided": "AE, two-sided rule",
    "detector": "detector (two-sided + input checks)",
    "cnn": "CNN",
}


def review_scores(patches, detector, paper_thresholds, cnn=None, cnn_threshold=None):
    """Per-patch scores of every reviewer in :data:`REVIEWERS` (above 1: sent to review).

    Parameters
    ----------
    patches : ndarray, shape (n, 192, 192)
    detector : weldlab.detector.Detector
        Two-sided, with its patch input ranges: the ``ae_two_sided``, ``inputs`` and
        ``detector`` columns are its :meth:`~weldlab.detector.Detector.patch_scores`.
    paper_thresholds : weldlab.thresholds.ResidualThresholds or dict
        The paper's OR rule (``ae_paper``), applied to the same residuals.
    cnn : keras.Model, optional
    cnn_threshold : float, optional
        The CNN's probability threshold; both or neither.

    Returns
    -------
    dict
        reviewer -> ndarray, shape (n,) (no ``cnn`` without a CNN).
    """
    from .evaluate import cnn_scores
    from .thresholds import ResidualThresholds

    scores = detector.patch_scores(patches)
    paper = ResidualThresholds.from_dict(paper_thresholds)
    out = {"inputs": scores["inputs"], "ae_paper": paper.score(scores["max_mean"], scores["max_std"]),
           "ae_two_sided": scores["residual"], "detector": scores["detector"]}
    if cnn is not None:
        out["cnn"] = cnn_scores(cnn, patches) / max(float(cnn_threshold), 1e-12)
    return out


def review_rates(inputs, detector, paper_thresholds, cnn=None, cnn_threshold=None):
    """Fraction of each kind of input sent to review by each reviewer.

    Parameters
    ----------
    inputs : dict
        name -> patches (n, 192, 192).
    detector, paper_thresholds, cnn, cnn_threshold
        See :func:`review_scores`.

    Returns
    -------
    dict
        name -> ``{"n", <reviewer>: fraction, ...}`` (reviewers of :data:`REVIEWERS`).
    """
    out = {}
    for name, x in inputs.items():
        scores = review_scores(x, detector, paper_thresholds, cnn, cnn_threshold)
        out[name] = {"n": int(len(x)), **{k: float(np.mean(v > 1)) for k, v in scores.items()}}
    return out


def film_reviews(films, detector, cnn=None, cnn_threshold=None):
    """Whole-image verdicts of the detector (and the CNN) for each image.

    Parameters
    ----------
    films : dict
        name -> image (H, W) in [0, 1], at least 192 px per side.
    detector : weldlab.detector.Detector
    cnn, cnn_threshold : optional
        See :func:`cnn_film_score`.

    Returns
    -------
    dict
        name -> ``{"verdict", "reasons", "regions", "cnn"}``: the detector's decision and
        its :class:`weldlab.verdict.Reason` objects (:func:`weldlab.detector.scan_image`),
        its number of flagged regions per kind
        (``{"indication": n, "quiet": m}``), and the CNN's verdict ("review" when any patch
        is above its threshold; None without a CNN).
    """
    from .detector import scan_image

    out = {}
    for name, image in films.items():
        verdict, _ = scan_image(detector, image, name=name, keep_maps=False)
        cnn_verdict = None
        if cnn is not None:
            cnn_verdict = "review" if cnn_film_score(cnn, image, cnn_threshold) > 1 else "accept"
        regions = {kind: sum(r["reason"] == kind for r in verdict.regions) for kind in ("indication", "quiet")}
        out[name] = {"verdict": verdict.decision, "reasons": verdict.reasons, "regions": regions, "cnn": cnn_verdict}
    return out


def statistics_outside(reasons):
    """The input statistics a verdict's reasons find outside their training ranges.

    Parameters
    ----------
    reasons : sequence of weldlab.verdict.Reason

    Returns
    -------
    set of str
        Their ``statistic`` keys (``"typicality"`` for the joint check).

    Examples
    --------
    >>> from weldlab.verdict import Reason
    >>> statistics_outside([Reason("input", statistic="bead_contrast", value=0.0, range=(0.1, None)),
    ...                     Reason("quiet", value=2.0, box=(0, 0, 9, 9), regions=1)])
    {'bead_contrast'}
    """
    return {r.statistic for r in reasons if r.kind == "input"}


def film_review_table(first, reviews):
    """Markdown: one row per image of :func:`film_reviews`, its verdicts and reasons.

    Parameters
    ----------
    first : str
        The first column's heading.
    reviews : dict
        From :func:`film_reviews`.

    Returns
    -------
    str
        Columns: the detector's decision, the input statistics outside their ranges (in
        words), the defect-like and too-quiet regions, the CNN's decision.
    """
    rows = []
    for name, v in reviews.items():
        outside = "; ".join(r.explanation() for r in v["reasons"] if r.kind == "input") or "no"
        rows.append([name, v["verdict"], outside, v["regions"]["indication"], v["regions"]["quiet"], v["cnn"]])
    return markdown_table([first, "detector", "input outside the training films' range", "defect-like regions",
                           "too-quiet regions", "CNN"], rows, align="lllrrl")


def review_rate_table(rates):
    """Markdown: one row per kind of :func:`review_rates`, its size and each reviewer's share (%).

    Examples
    --------
    >>> from weldlab.review import review_rate_table
    >>> print(review_rate_table({"blank": {"n": 20, "inputs": 1.0, "ae_paper": 0.5}}).splitlines()[2])
    | blank | 20 | 100.0 | 50.0 |
    """
    reviewers = [r for r in REVIEWERS if any(r in v for v in rates.values())]
    return markdown_table(["input", "n", *(f"{REVIEWERS[r]} (%)" for r in reviewers)],
                          [[k.replace("_", " "), v["n"], *(f"{100 * v[r]:.1f}" for r in reviewers)]
                           for k, v in rates.items()])


def below_goal(rates, kinds=None, reviewer="detector", goal=REVIEW_GOAL):
    """The kinds that ``reviewer`` sends to review less often than ``goal``.

    Returns
    -------
    dict
        kind -> its share, in the order of ``rates`` (only ``kinds`` if given).

    Examples
    --------
    >>> from weldlab.review import below_goal
    >>> below_goal({"blank": {"detector": 1.0}, "noised": {"detector": 0.6}})
    {'noised': 0.6}
    """
    return {k: v[reviewer] for k, v in rates.items() if (kinds is None or k in kinds) and v[reviewer] < goal}


def goal_sentence(rates, kinds, reviewer="detector", goal=REVIEW_GOAL):
    """How many of ``kinds`` the ``reviewer`` sends to review at least ``goal`` of the time.

    Examples
    --------
    >>> from weldlab.review import goal_sentence
    >>> goal_sentence({"blank": {"detector": 1.0}, "noised": {"detector": 0.6}}, ["blank", "noised"])
    '1 of the 2 kinds go to review at least 99 % of the time; below that: noised (60 %).'
    """
    missed = below_goal(rates, kinds, reviewer, goal)
    others = ", ".join(f"{k.replace('_', ' ')} ({100 * v:.0f} %)" for k, v in missed.items()) or "none"
    return (f"{len(kinds) - len(missed)} of the {len(kinds)} kinds go to review at least {100 * goal:.0f} % "
            f"of the time; below that: {others}.")


#: Below this chance of seeing as many false positives as measured (or more) if the
#: calibrated rate held, a reviewer is said not to hold its rate on that split.
FPR_HOLDS_LEVEL = 0.01


def fpr_holds(n_flagged, n, fpr, level=FPR_HOLDS_LEVEL):
    """Whether ``n_flagged`` false positives in ``n`` okay patches agree with a rate ``fpr``.

    A one-sided binomial test: the rate is said not to hold when so many (or more) would
    come up with probability below ``level`` if each patch were flagged with probability
    ``fpr``. 300 patches cannot resolve 0.1 % (0.3 expected), but 5 of them flagged can
    only mean the thresholds do not transfer.

    Parameters
    ----------
    n_flagged, n : int
    fpr : float
    level : float

    Returns
    -------
    holds : bool
    chance : float
        The probability of ``n_flagged`` or more under ``fpr``.

    Examples
    --------
    >>> from weldlab.review import fpr_holds
    >>> fpr_holds(1, 300, 0.001)[0], fpr_holds(5, 300, 0.001)[0]
    (True, False)
    """
    from scipy.stats import binom

    chance = float(binom.sf(int(n_flagged) - 1, int(n), float(fpr)))
    return chance >= level, chance


def film_alarms_sentence(alarms, shapes, fpr):
    """False alarms measured on defect-free areas of films, against what a per-patch rate allows.

    The thresholds are set per 192 px patch; a film holds many patch-sized areas, and each may
    raise one false alarm at ``fpr``.

    Parameters
    ----------
    alarms : int
        Flagged regions on the films that no defect explains.
    shapes : sequence of (int, int)
        The films' shapes (pixels).
    fpr : float

    Returns
    -------
    str
        The areas per film, the alarms they allow, the measured count and, when so many
        would come up by chance less often than :data:`FPR_HOLDS_LEVEL`
        (:func:`fpr_holds` over all the areas), that the calibration does not hold there.

    Examples
    --------
    >>> from weldlab.review import film_alarms_sentence
    >>> print(film_alarms_sentence(0, [(600, 1200)] * 4, 0.001))
    A film holds about 20 patch-sized areas: at 0.1 % per patch, about 0.02 false alarms per film ...
    Measured: 0 on 4 films.
    >>> film_alarms_sentence(3, [(600, 1200)], 0.001)[-62:]
    'the calibration does not hold on it (chance 1e-06 of so many).'
    """
    areas = float(np.mean([h * w for h, w in shapes])) / PATCH**2
    holds, chance = fpr_holds(alarms, max(1, round(areas * len(shapes))), fpr)
    said = (f"A film holds about {areas:.0f} patch-sized areas: at {100 * fpr:g} % per patch, about "
            f"{fpr * areas:.2f} false alarms per film if the calibration holds. Measured: {alarms} on "
            f"{len(shapes)} film{'s' if len(shapes) != 1 else ''}")
    if holds:
        return said + "."
    return (said + f": the calibration does not hold on {'them' if len(shapes) != 1 else 'it'} "
            f"(chance {chance:.0e} of so many).")


def false_positive_sentence(rates, fpr, control, reviewer="detector", kinds=None, goal=REVIEW_GOAL):
    """The reviewer's false positive rates, and what its rates on other inputs are worth.

    Parameters
    ----------
    rates : dict
        From :func:`review_rates`, with ``okay (validation)`` and ``okay (test)``.
    fpr : float
        The rate the thresholds were calibrated for.
    control : str
        The key of the control (okay patches changed in an expected way).
    reviewer : str
    kinds : sequence of str, optional
        Unexpected kinds: with them, :func:`goal_sentence` follows when the rate holds.
    goal : float

    Returns
    -------
    str
        Markdown. When the test okay patches are flagged far more often than ``fpr``
        (:func:`fpr_holds`), it says so first: the detector does not work as calibrated on
        that split, and sending unexpected inputs to review is then no achievement.
    """
    test = rates["okay (test)"]
    flagged = int(round(test[reviewer] * test["n"]))
    holds, chance = fpr_holds(flagged, test["n"], fpr)
    text = (f"The {reviewer}'s false positive rate: {100 * rates['okay (validation)'][reviewer]:.1f} % on the "
            f"validation okay patches, {100 * test[reviewer]:.1f} % on the test okay patches"
            + (f" (the input checks alone: {100 * rates['okay (validation)']['inputs']:.1f} % and "
               f"{100 * test['inputs']:.1f} %)" if reviewer == "detector" else "")
            + f", and {100 * rates[control][reviewer]:.0f} % on the control ({rates[control]['n']} okay patches "
              "changed in an expected way).")
    if not holds:
        return (f"**On this split the {reviewer} does not work as calibrated.** It sends {flagged} of "
                f"{test['n']} test okay patches to review; calibrated for {100 * fpr:g} %, it would do so "
                f"with a chance of {chance:.0e}. Its thresholds do not transfer to these films, so its rates "
                f"on the unexpected inputs are not those of a working detector. " + text)
    return text + (" Against the goal we set for it, every kind: " + goal_sentence(rates, kinds, reviewer, goal)
                   if kinds else "")


def outside_ranges(reviews, names=None, statistic=None):
    """The images whose input statistics lie outside the training films' ranges.

    Parameters
    ----------
    reviews : dict
        From :func:`film_reviews`.
    names : iterable of str, optional
        Only these images (default: all).
    statistic : str, optional
        Only an image with this statistic outside (e.g. ``"bead_contrast"``).

    Returns
    -------
    list of str
        In the order of ``reviews``.
    """
    keep = set(reviews if names is None else names)
    return [k for k, v in reviews.items()
            if k in keep and (statistic in statistics_outside(v["reasons"]) if statistic
                              else statistics_outside(v["reasons"]))]


def films_sentence(reviews, non_weld, tests, inverted, n_training_films):
    """What the detector and the CNN make of non-weld images, the test films and their negatives.

    Parameters
    ----------
    reviews : dict
        From :func:`film_reviews`, with every image named below.
    non_weld, tests, inverted : iterable of str
        The images that are no weld radiograph, the test films as they are, and the test
        films inverted.
    n_training_films : int

    Returns
    -------
    str
        How many non-weld images each reviewer sends to review; how many test films the
        input checks call unusual (and why that is a false alarm); how many inverted
        films they call unusual for their weld bead.

    Examples
    --------
    >>> from weldlab.verdict import Reason
    >>> bead = Reason("input", statistic="bead_contrast", value=0.0, range=(0.1, None))
    >>> reviews = {"noise": {"verdict": "review", "reasons": [], "cnn": "accept"},
    ...            "film 1": {"verdict": "accept", "reasons": [], "cnn": "accept"},
    ...            "film 1, inverted": {"verdict": "review", "reasons": [bead], "cnn": "accept"}}
    >>> films_sentence(reviews, ["noise"], ["film 1"], ["film 1, inverted"], 24)[:65]
    '1 of the 1 non-weld images go to review with the detector, 0 with'
    """
    non_weld, tests, inverted = list(non_weld), list(tests), list(inverted)
    n_detector = sum(reviews[k]["verdict"] == "review" for k in non_weld)
    n_cnn = sum(reviews[k]["cnn"] == "review" for k in non_weld)
    outside = outside_ranges(reviews, tests)
    why = (f" ({', '.join(outside)}): a film of the same kind as the {n_training_films} training films, with "
           "intensities they do not cover; it goes to review for that reason, a false alarm of the input checks")
    by_bead = outside_ranges(reviews, inverted, "bead_contrast")
    return (f"{n_detector} of the {len(non_weld)} non-weld images go to review with the detector, {n_cnn} with the "
            f"CNN. The input checks call {len(outside)} of the {len(tests)} test films unusual"
            + (why if outside else "") + f"; {len(by_bead)} of the {len(inverted)} inverted test films by their "
            "bead, which is no longer brighter than the plate.")


def told_unusual(reviews, base):
    """The images whose verdict tells the reviewer that the image itself is unusual.

    Unusual beyond what the image ``base`` (the film they were made from) shows: an input
    statistic outside its range, or more too-quiet regions, that ``base`` does not have.

    Parameters
    ----------
    reviews : dict
        From :func:`film_reviews`, with ``base`` among its images.
    base : str

    Returns
    -------
    list of str
        In the order of ``reviews``.
    """
    b = reviews[base]
    return [k for k, v in reviews.items()
            if statistics_outside(v["reasons"]) - statistics_outside(b["reasons"])
            or v["regions"]["quiet"] > b["regions"]["quiet"]]


def told_sentence(reviews, base):
    """For how many images made from ``base`` the verdict says that the image is unusual.

    Parameters
    ----------
    reviews : dict
        From :func:`film_reviews`: ``base`` and the images made from it.
    base : str

    Returns
    -------
    str
        The images :func:`told_unusual` finds, then the others: accepted, or sent to review
        only for what ``base`` shows too (its defect-like regions or its own statistics).
    """
    told = told_unusual(reviews, base)
    untold = [k for k in reviews if k != base and k not in told]
    accepted = [k for k in untold if reviews[k]["verdict"] == "accept"]
    others = [k for k in untold if k not in accepted]
    notes = [f"accepted: {', '.join(accepted)}"] if accepted else []
    if others:
        notes.append("sent to review only for what the film as it is shows too (its defect-like regions or its "
                     f"own statistics): {', '.join(others)}")
    return (f"The reviewer is told that the film is unusual for {len(told)} of the {len(reviews) - 1} made films "
            f"({', '.join(told) or 'none'})" + "".join(f"; {note}" for note in notes) + ".")


def plot_review_rates(rates, reviewers=("ae_paper", "detector", "cnn"), ax=None):
    """Bars: the share of each kind that each reviewer sends to review.

    Parameters
    ----------
    rates : dict
        From :func:`review_rates`.
    reviewers : sequence of str
        Keys of :data:`REVIEWERS`, one bar each per kind.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = axes_or_new(ax, (7.2, 4))
    names, width = list(rates), 0.8 / len(reviewers)
    xs = np.arange(len(names))
    for j, key in enumerate(reviewers):
        ax.bar(xs + (j - (len(reviewers) - 1) / 2) * width, [100 * rates[n][key] for n in names], width,
               label=REVIEWERS[key])
    ax.set_xticks(xs, [n.replace("_", " ") for n in names], rotation=60, ha="right")
    ax.set_ylabel("sent to review (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=11, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


def flagged_table(columns, unexpected_kinds):
    """Markdown: test sets and unexpected kinds flagged by several autoencoders (%).

    Parameters
    ----------
    columns : dict
        heading -> ``(evaluation, rates)``: an autoencoder's
        :func:`weldlab.evaluate.evaluate_autoencoder` result and its share flagged per
        unexpected kind (kind -> fraction).
    unexpected_kinds : sequence of str

    Returns
    -------
    str
        A row of false positives on the okay test patches, one per test set (TPR at the
        calibrated thresholds), one per unexpected kind.
    """
    evals = [ev for ev, _ in columns.values()]
    rows = [["okay, test (false positives)", *(f"{100 * ev['fpr_calibrated_on_test']:.1f}" for ev in evals)]]
    rows += [[k.replace("_", " "), *(f"{100 * ev['sets'][k]['tpr_calibrated']:.0f}" for ev in evals)]
             for k in evals[0]["sets"]]
    rows += [[f"unexpected: {k.replace('_', ' ')}", *(f"{100 * r[k]:.0f}" for _, r in columns.values())]
             for k in unexpected_kinds]
    return markdown_table(["test set", *(f"{h} (%)" for h in columns)], rows)
