"""Operating points: thresholds calibrated at a false positive rate on okay patches.

Every detector in weldlab ends in a threshold that is calibrated the same way: on okay
patches that were not used for training (the validation okay patches), it is set as low as
possible while flagging at most a fraction ``fpr`` of them (paper §4: 0.1 %). This module
is the one home of that rule and of the two kinds of threshold it produces:

* :class:`ResidualThresholds`, the autoencoder's OR rule (paper §3.1, Eq. 8-9): a window
  is anomalous when ``|<r>| > t_mean`` or ``sigma(r) > t_std``; with ``t_quiet`` also when
  the residual around it is quieter than any okay film allows (the two-sided rule of
  chapter 10, see :mod:`weldlab.residuals`).
* :class:`ProbabilityThreshold`, the supervised CNN's: a patch is flagged when its output
  probability is above ``probability``.

Both have ``calibrate`` (a classmethod), ``score`` (one number per patch, flagged exactly
when above the threshold's ``cut``), ``flags`` and a JSON form (``dict(th)``); both read
back from a model record with :func:`from_record`. :func:`fpr_budget` is the one place
where "at most ``fpr`` of ``n`` okay patches" is counted.

How the OR rule's budget is shared between its tests is our choice (the paper does not
say); see :meth:`ResidualThresholds.calibrate` and method §5 in ``book/method.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

#: The patch-level false positive rate of the paper's operating point (0.1 %). It is the
#: default of :class:`weldlab.config.Config`'s ``fpr``; pass that parameter, not this.
DEFAULT_FPR = 0.001


class CalibrationWarning(UserWarning):
    """A false positive rate that the number of okay patches cannot resolve."""


def leftover_threshold(values, flagged, allowed):
    """The threshold of a further test that gets what the others leave of a budget.

    The test flags ``values < threshold``. Among the patches the others do not ``flag``,
    at most ``allowed`` minus the number they flag lie below it; when they use the whole
    budget, it is the smallest of them (nothing more is flagged). For a test that flags
    large values, pass ``-values`` and negate the result.

    Parameters
    ----------
    values : ndarray, shape (n,)
    flagged : ndarray, shape (n,), bool
    allowed : int
        The budget, from :func:`fpr_budget`.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> leftover_threshold(np.arange(10.0), np.zeros(10, bool), allowed=2)
    2.0
    >>> leftover_threshold(np.arange(10.0), np.arange(10) < 2, allowed=2)
    2.0
    """
    values, flagged = np.asarray(values, float), np.asarray(flagged, bool)
    left = max(int(allowed) - int(np.count_nonzero(flagged)), 0)
    rest = np.sort(values[~flagged])
    return float(rest[min(left, rest.size - 1)]) if rest.size else float(values.min())


def fpr_budget(n, fpr, what="okay patches", warn=True):
    """How many of ``n`` okay patches a threshold at rate ``fpr`` may flag.

    Parameters
    ----------
    n : int
        Number of okay calibration patches.
    fpr : float
        Target false positive rate, in (0, 1).
    what : str
        Names the patches in the warning.
    warn : bool
        Warn when the rate is not resolved (False: the caller reports it itself).

    Returns
    -------
    int
        ``floor(fpr * n)``; 0 (with a :class:`CalibrationWarning`) when ``n * fpr < 1``.

    Examples
    --------
    >>> from weldlab.thresholds import fpr_budget
    >>> fpr_budget(2000, 0.001)
    2
    >>> fpr_budget(300, 0.001, warn=False)  # 300 okay patches cannot resolve 0.1 %
    0
    """
    if int(n) < 1:
        raise ValueError(f"{what}: no okay scores to calibrate on")
    if not 0 < fpr < 1:
        raise ValueError(f"fpr: expected a rate in (0, 1), got {fpr!r}")
    allowed = int(np.floor(fpr * int(n) + 1e-9))
    if allowed < 1 and warn:
        warnings.warn(
            f"{n} {what} cannot resolve a false positive rate of {fpr:g} (need at least "
            f"{int(np.ceil(1 / fpr))}); the thresholds flag none of them, so the realised rate "
            "on these patches is 0 and on new data is unknown",
            CalibrationWarning, stacklevel=3,
        )
    return allowed


def threshold_at_fpr(scores_okay, fpr=DEFAULT_FPR):
    """The lowest threshold on a score that flags at most ``fpr`` of the okay scores.

    Parameters
    ----------
    scores_okay : ndarray, shape (n,)
        Higher means more anomalous; flagged means strictly above the threshold.
    fpr : float

    Returns
    -------
    threshold : float
    realised_fpr : float
        Fraction of okay scores strictly above the threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.thresholds import threshold_at_fpr
    >>> threshold_at_fpr(np.arange(1000.0), fpr=0.01)
    (989.0, 0.01)
    """
    t, realised, _ = _lowest_threshold(scores_okay, fpr)
    return t, realised


def _lowest_threshold(scores_okay, fpr):
    s = np.sort(np.asarray(scores_okay, float).ravel())[::-1]
    allowed = fpr_budget(s.size, fpr, "okay scores")
    t = float(s[min(allowed, s.size - 1)])
    return t, float(np.mean(s > t)), allowed


class _Threshold(Mapping):
    """Mapping view of a threshold dataclass: its set fields, as stored in a record."""

    def to_dict(self):
        """The JSON form stored in model records (fields that are set)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __getitem__(self, key):
        value = getattr(self, key, None) if key in self._names() else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self):
        return len(self.to_dict())

    @classmethod
    def _names(cls):
        return {f.name for f in fields(cls)}

    @classmethod
    def from_dict(cls, values, where="thresholds"):
        """Read the JSON form back; unknown keys are ignored, missing ones named."""
        if isinstance(values, cls):
            return values
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: expected a mapping of {sorted(cls._required)}, got {type(values).__name__}")
        missing = [k for k in cls._required if k not in values]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)} (has {', '.join(sorted(values)) or 'nothing'})")
        try:
            return cls(**{k: values[k] for k in cls._names() if k in values})
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc


@dataclass(frozen=True, eq=False)
class ResidualThresholds(_Threshold):
    """The autoencoder's OR rule: ``t_mean`` on ``|<r>|``, ``t_std`` on ``sigma(r)``.

    With ``t_quiet`` the rule is two-sided: a window is also flagged when the residual's
    standard deviation over the :data:`weldlab.geometry.QUIET_KERNEL` neighbourhood around
    it is below ``t_quiet``.

    Attributes
    ----------
    t_mean, t_std : float
    t_quiet : float or None
    quiet_margin : float or None
        The factor ``t_quiet`` was lowered by below the quietest okay calibration patch it
        could have flagged within the budget (:meth:`calibrate`).
    fpr_target, fpr_calibration : float or None
        The asked and the realised rate on the calibration patches.
    n_okay : int or None
        Number of calibration patches.
    resolvable : bool or None
        False when ``n_okay * fpr_target < 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.thresholds import ResidualThresholds
    >>> rng = np.random.default_rng(0)
    >>> mean, std, quiet = rng.uniform(0, 1, (3, 2000))
    >>> th = ResidualThresholds.calibrate(mean, std, fpr=0.001, min_std=quiet)
    >>> th.two_sided, th.fpr_calibration <= 0.001
    (True, True)
    >>> int(np.count_nonzero(th.score(mean, std, quiet) > th.cut))
    2
    """

    _required = ("t_mean", "t_std")

    t_mean: float
    t_std: float
    t_quiet: float | None = None
    fpr_target: float | None = None
    fpr_calibration: float | None = None
    n_okay: int | None = None
    resolvable: bool | None = None
    quiet_margin: float | None = None

    #: A patch is flagged when its :meth:`score` is above this.
    cut = 1.0

    def __post_init__(self):
        for key in ("t_mean", "t_std", "t_quiet"):
            value = getattr(self, key)
            if key == "t_quiet" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                    or not np.isfinite(value) or value <= 0:
                raise ValueError(f"thresholds: expected a positive finite {key!r}, got {value!r}")

    @property
    def two_sided(self):
        """Whether the quiet test is part of the rule."""
        return self.t_quiet is not None

    @property
    def paper(self):
        """The paper's one-sided rule with the same ``t_mean`` and ``t_std``."""
        return ResidualThresholds(self.t_mean, self.t_std, None, self.fpr_target, None, self.n_okay,
                                  self.resolvable)

    @classmethod
    def calibrate(cls, max_mean, max_std, fpr=DEFAULT_FPR, min_std=None, quiet_margin=1.0):
        """Thresholds flagging at most ``fpr`` of the okay calibration patches.

        Many pairs ``(t_mean, t_std)`` give the same rate under the OR rule. We take the
        pair whose two statistics are exceeded equally often: both thresholds are the
        ``j``-th largest values of their maxima, with the largest ``j`` for which the OR
        rule flags at most :func:`fpr_budget` patches. With ``min_std`` the quiet test gets
        what the pair leaves of the budget: ``t_quiet`` is set so that, among the okay
        patches the pair does not flag, at most the remaining number fall below it (when
        the pair uses the whole budget, the smallest of them), then divided by
        ``quiet_margin``, so that a new film with less grain than any calibration film is not
        called too quiet for that alone (:func:`weldlab.screening.grain_margin`).

        Parameters
        ----------
        max_mean, max_std : ndarray, shape (n,)
            Per-patch maxima of ``|<r>|`` and ``sigma(r)`` over the 9 x 9 windows
            (:func:`weldlab.residuals.patch_maxima`).
        fpr : float
        min_std : ndarray, shape (n,), optional
            Per-patch minima of the quiet neighbourhoods' ``sigma(r)``.
        quiet_margin : float
            At least 1; 1 puts ``t_quiet`` at the budget's edge.

        Returns
        -------
        ResidualThresholds
        """
        a, b = np.asarray(max_mean, float), np.asarray(max_std, float)
        if a.shape != b.shape or a.ndim != 1 or a.size == 0:
            raise ValueError(f"max_mean, max_std: expected two equal 1-D arrays, got {a.shape} and {b.shape}")
        c = None if min_std is None else np.asarray(min_std, float)
        if c is not None and c.shape != a.shape:
            raise ValueError(f"min_std: expected shape {a.shape} like max_mean, got {c.shape}")
        n = a.size
        allowed = fpr_budget(n, fpr)
        sa, sb = np.sort(a)[::-1], np.sort(b)[::-1]

        def flags(j):
            j = min(j, n - 1)
            return (a > sa[j]) | (b > sb[j])

        # The number flagged never decreases with j: bisect for the largest j in budget.
        lo, hi = 0, min(allowed, n - 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if np.count_nonzero(flags(mid)) <= allowed:
                lo = mid
            else:
                hi = mid - 1
        flagged = flags(lo)
        t_quiet, margin = None, None
        if c is not None:
            margin = float(quiet_margin)
            if not (np.isfinite(margin) and margin >= 1):
                raise ValueError(f"quiet_margin: expected a finite factor >= 1, got {quiet_margin!r}")
            t_quiet = leftover_threshold(c, flagged, allowed) / margin
            flagged = flagged | (c < t_quiet)
        return cls(float(sa[lo]), float(sb[lo]), t_quiet, float(fpr), float(np.mean(flagged)), int(n),
                   bool(allowed >= 1), margin)

    def score(self, max_mean, max_std, min_std=None):
        """One number per patch: ``max(max|<r>| / t_mean, max sigma / t_std[, t_quiet / min sigma])``.

        A patch is flagged exactly when its score is above :attr:`cut` (1).

        Parameters
        ----------
        max_mean, max_std : ndarray, shape (n,)
        min_std : ndarray, shape (n,)
            Required by two-sided thresholds.

        Returns
        -------
        ndarray, shape (n,)
        """
        s = np.maximum(np.asarray(max_mean) / self.t_mean, np.asarray(max_std) / self.t_std)
        if self.two_sided:
            if min_std is None:
                raise ValueError("min_std: required by two-sided thresholds (they have t_quiet)")
            s = np.maximum(s, self.quiet_score(min_std))
        return s

    def quiet_score(self, min_std):
        """The quiet test's part of :meth:`score`: ``t_quiet / min sigma``.

        Finite even for a residual with no spread at all (a flawless reconstruction of a
        blank frame): ``min sigma`` counts as at least 1e-12.
        """
        return self.t_quiet / np.maximum(np.asarray(min_std, float), 1e-12)

    def flags(self, mean, std, quiet=None):
        """Flag codes per window: 1 mean, 2 std (3 both), plus 4 when too quiet.

        Parameters
        ----------
        mean, std : ndarray, same shape
            Window statistics (:func:`weldlab.residuals.kernel_statistics`).
        quiet : ndarray, same shape
            :func:`weldlab.residuals.quiet_std`; required by two-sided thresholds.

        Returns
        -------
        ndarray, same shape, int8
        """
        out = ((np.abs(mean) > self.t_mean).astype(np.int8) + 2 * (std > self.t_std).astype(np.int8))
        if self.two_sided:
            if quiet is None:
                raise ValueError("quiet: required by two-sided thresholds (they have t_quiet)")
            out += 4 * (np.asarray(quiet) < self.t_quiet).astype(np.int8)
        return out


@dataclass(frozen=True, eq=False)
class ProbabilityThreshold(_Threshold):
    """The classifier's rule: flagged when the output probability is above ``probability``.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.thresholds import ProbabilityThreshold
    >>> th = ProbabilityThreshold.calibrate(np.linspace(0, 1, 1000), fpr=0.01)
    >>> round(th.probability, 3), th.fpr_calibration
    (0.99, 0.01)
    """

    _required = ("probability",)

    probability: float
    fpr_target: float | None = None
    fpr_calibration: float | None = None
    n_okay: int | None = None
    resolvable: bool | None = None

    @property
    def cut(self):
        """A patch is flagged when its :meth:`score` is above this."""
        return self.probability

    @classmethod
    def calibrate(cls, scores_okay, fpr=DEFAULT_FPR):
        """The lowest threshold flagging at most ``fpr`` of the okay scores.

        Parameters
        ----------
        scores_okay : ndarray, shape (n,)
        fpr : float

        Returns
        -------
        ProbabilityThreshold
        """
        t, realised, allowed = _lowest_threshold(scores_okay, fpr)
        return cls(t, float(fpr), realised, int(np.size(scores_okay)), allowed >= 1)

    def score(self, probability):
        """The score is the probability itself (flagged above :attr:`cut`)."""
        return np.asarray(probability, float)

    def flags(self, probability):
        """Whether each probability is above the threshold."""
        return np.asarray(probability) > self.probability


def from_record(record, rule="paper", where="record"):
    """The thresholds stored in a model record.

    Parameters
    ----------
    record : dict
        ``record.json`` of a trained model: an autoencoder's has ``thresholds`` (and,
        calibrated for scanning, ``two_sided_thresholds``); a CNN's ``threshold`` with a
        ``probability``.
    rule : {"paper", "two-sided"}
        Which of an autoencoder's calibrations.

    Returns
    -------
    ResidualThresholds or ProbabilityThreshold
    """
    if "threshold" in record and "thresholds" not in record:
        return ProbabilityThreshold.from_dict(record["threshold"], f"{where}: threshold")
    key = {"paper": "thresholds", "two-sided": "two_sided_thresholds"}.get(rule)
    if key is None:
        raise ValueError(f"rule: expected 'paper' or 'two-sided', got {rule!r}")
    if key not in record:
        raise KeyError(f"{where}: has no calibrated {key!r} for the {rule} rule")
    return ResidualThresholds.from_dict(record[key], f"{where}: {key}")
