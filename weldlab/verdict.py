"""A detector's verdict on one radiograph, and the reasons for it, as data.

A :class:`Verdict` is "accept" when nothing was flagged and the image lies within the
training films' ranges, else "review" with one :class:`Reason` per cause: a kind of flagged
region (a defect-like indication, a too-quiet residual) or an input statistic outside its
training range. Programs read the fields; the sentences a person reads are rendered from
them (:meth:`Reason.text`), and the JSON a scan writes is :meth:`Verdict.to_dict`.

Examples
--------
>>> from weldlab.verdict import Reason, Verdict
>>> why = Reason("input", statistic="noise_std", value=0.0, range=(0.0029, 0.0074))
>>> why.text()
"input outside the training films' range: film grain (noise std.) 0 below the training range 0.0029 to 0.0074"
>>> v = Verdict("film.png", (400, 600), (why,), rule="two-sided", max_score=0.8)
>>> v.decision, v.reasons[0].statistic
('review', 'noise_std')
>>> Verdict.from_dict(v.to_dict()) == v
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

#: What each kind of reason means, as the start of its sentence.
REASON_KINDS = {"indication": "defect-like indication (residual too large)",
                "quiet": "too-quiet residual (smoother than any training film)",
                "input": "input outside the training films' range"}
#: The decision rules: the paper's OR rule, or the two-sided rule with the input checks.
RULES = ("two-sided", "paper")
#: The statistic of the typicality check's reason (the statistics jointly unlike training's).
TYPICALITY = "typicality"


def _label(statistic):
    from .screening import STATISTIC_LABELS

    return STATISTIC_LABELS.get(statistic, statistic)


@dataclass(frozen=True)
class Reason:
    """Why an image goes to review: one kind of flagged region, or one input statistic.

    Parameters
    ----------
    kind : {"indication", "quiet", "input"}
        :data:`REASON_KINDS`.
    statistic : str, optional
        ``"input"``: the statistic outside its range (a key of
        :data:`weldlab.screening.STATISTIC_LABELS`, or :data:`TYPICALITY`).
    value : float, optional
        ``"input"``: the image's value (NaN: it cannot be measured; for the typicality
        check, the distance). Regions: the strongest region's score.
    range : tuple of (float or None, float or None), optional
        ``"input"``: the training range (None on an open side; typicality: ``(None,
        threshold)``).
    box : tuple of int, optional
        Regions: the strongest region's ``(top, left, bottom, right)`` in image pixels.
    regions : int
        Regions of this kind.
    nearest : str, optional
        Typicality: the statistic that differs most.
    """

    kind: str
    statistic: str | None = None
    value: float | None = None
    range: tuple | None = None
    box: tuple | None = None
    regions: int = 0
    nearest: str | None = None

    def __post_init__(self):
        if self.kind not in REASON_KINDS:
            raise ValueError(f"kind: expected one of {tuple(REASON_KINDS)}, got {self.kind!r}")
        if self.kind == "input" and self.statistic is None:
            raise ValueError("an input reason needs the statistic outside its range")
        if self.kind != "input" and (self.box is None or self.regions < 1):
            raise ValueError(f"a {self.kind!r} reason needs the strongest region's box and a region count")

    @property
    def side(self):
        """``"input"`` reasons: "below", "above" or "unmeasured" the range; else None."""
        if self.kind != "input":
            return None
        if self.value is None or not np.isfinite(self.value):
            return "unmeasured"
        lo, _ = self.range
        return "below" if lo is not None and self.value < lo else "above"

    def explanation(self):
        """What the kind's label does not say: which statistic and value, or where."""
        if self.kind != "input":
            r0, c0, r1, c1 = self.box
            plural = "s" * (self.regions > 1)
            return f"{self.regions} region{plural}, the strongest at rows {r0}-{r1}, columns {c0}-{c1}"
        if self.statistic == TYPICALITY:
            return (f"statistics unlike any okay training patch's together (distance {self.value:.3g} "
                    f"above {self.range[1]:.3g}; most of all its {_label(self.nearest)})")
        label = _label(self.statistic)
        if self.side == "unmeasured":
            return f"{label} cannot be measured (no unclipped pixels)"
        lo, hi = self.range
        if lo is not None and hi is not None:
            shown = f"{lo:.3g} to {hi:.3g}"
        else:
            shown = f"(at least {lo:.3g})" if lo is not None else f"(at most {hi:.3g})"
        return f"{label} {self.value:.3g} {self.side} the training range {shown}"

    def text(self):
        """The reason as a sentence: the kind's label, then :meth:`explanation`."""
        return f"{REASON_KINDS[self.kind]}: {self.explanation()}"

    def to_dict(self):
        """JSON-ready fields, with the sentence as ``text``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("range", "box"):
            out[key] = None if out[key] is None else list(out[key])
        if out["value"] is not None and not np.isfinite(out["value"]):
            out["value"] = None  # JSON has no NaN: unmeasured
        return out | {"text": self.text()}

    @classmethod
    def from_dict(cls, d):
        """The inverse of :meth:`to_dict` (``text`` is rendered again, not read)."""
        kw = {f.name: d.get(f.name) for f in fields(cls)}
        for key in ("range", "box"):
            kw[key] = None if kw[key] is None else tuple(kw[key])
        if kw["kind"] == "input" and kw["value"] is None:
            kw["value"] = float("nan")
        kw["regions"] = kw["regions"] or 0
        return cls(**kw)


@dataclass(frozen=True)
class Verdict:
    """A detector's decision on one radiograph.

    Parameters
    ----------
    image : str
        The image's name (a file scan: its path).
    shape : tuple of int
        ``(H, W)``.
    reasons : tuple of Reason
        Empty: accept.
    rule : {"two-sided", "paper"}
    max_score : float
        The largest window score (1: at a threshold).
    regions : tuple of dict
        Flagged regions (:func:`weldlab.detector.flagged_regions`), strongest first.
    analysed_box : tuple of int
        The pixels the windows cover (an 18 px border is not analysed).
    thresholds : dict
        ``t_mean``, ``t_std`` (and ``t_quiet``).
    seconds : float
    input : dict, optional
        With input checks: the image's ``statistics`` and ``ranges_from`` (what the ranges
        were measured on); the statistics outside them are the ``"input"`` reasons.
    """

    image: str
    shape: tuple
    reasons: tuple = ()
    rule: str = "two-sided"
    max_score: float = 0.0
    regions: tuple = ()
    analysed_box: tuple = ()
    thresholds: dict = field(default_factory=dict)
    seconds: float = 0.0
    input: dict | None = None

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule: expected one of {RULES}, got {self.rule!r}")
        bad = [r for r in self.reasons if not isinstance(r, Reason)]
        if bad:
            raise TypeError(f"reasons: expected weldlab.verdict.Reason objects, got {type(bad[0]).__name__}")

    @property
    def decision(self):
        """"accept" (no reason) or "review" (send to a human)."""
        return "review" if self.reasons else "accept"

    def of_kind(self, kind):
        """The reasons of one kind (:data:`REASON_KINDS`), in order."""
        if kind not in REASON_KINDS:
            raise ValueError(f"kind: expected one of {tuple(REASON_KINDS)}, got {kind!r}")
        return [r for r in self.reasons if r.kind == kind]

    def lines(self):
        """The verdict in words: a headline, then one sentence per reason."""
        return [f"{self.decision.upper()} ({self.rule} rule)"] + [r.text() for r in self.reasons]

    def to_dict(self):
        """The JSON a scan writes: ``verdict`` (the decision), ``reasons`` as dicts, the rest as is."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["verdict"] = self.decision
        out["reasons"] = [r.to_dict() for r in self.reasons]
        out["shape"], out["regions"], out["analysed_box"] = list(self.shape), list(self.regions), list(self.analysed_box)
        if self.input is None:
            del out["input"]
        return out

    @classmethod
    def from_dict(cls, d):
        """A verdict from its JSON (:meth:`to_dict`; extra keys such as ``source`` are ignored)."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kw["reasons"] = tuple(Reason.from_dict(r) for r in d.get("reasons", ()))
        for key in ("shape", "regions", "analysed_box"):
            if key in kw:
                kw[key] = tuple(kw[key])
        v = cls(**kw)
        if d.get("verdict") not in (None, v.decision):
            raise ValueError(f"verdict {d['verdict']!r} disagrees with its reasons ({v.decision!r})")
        return v
