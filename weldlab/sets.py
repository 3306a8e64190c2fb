"""Training sets as a type: what a model learns from, parsed once.

A training set is named as on the command line and in the records (``"D+sni"``): the
sources joined by ``+``. For the autoencoder they are the perturbations pasted into okay
patches (paper Table 3: None, D, SNI; weldlab adds D+SNI); for the CNN they are the
positive class beside the okay patches (paper Table 2: D, D+SC, D+SC+SPC, D+SNI). The
paper's use case 2 (``"okay+defects"``) is an autoencoder that reconstructs okay *and*
defect patches, without perturbations.

:func:`parse` is the one place such a name is read; everything else asks the
:class:`TrainingSet` (its ``sources``, its paper ``label``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The sources a set can hold: real defects (D), synthetic natural-image indications
#: (SNI), the synthetic circular (SC) and partial-circle (SPC) indications.
SOURCES = ("D", "sni", "circular", "partial_circle")
#: How the paper writes each source (and the two sets that have none).
LABELS = {"D": "D", "sni": "SNI", "circular": "SC", "partial_circle": "SPC", "none": "None",
          "okay+defects": "okay+defects"}

#: The autoencoder's perturbation sets: Table 3's columns, then weldlab's D+SNI.
AE_SETS = ("none", "D", "sni", "D+sni")
#: The paper's use case 2 (Fig. 12-13).
USE_CASE_2 = "okay+defects"
#: The CNN's training sets: Table 2's columns.
CNN_SETS = ("D", "D+circular", "D+circular+partial_circle", "D+sni")
#: The sets of the shipped models.
SHIPPED = {"ae": "sni", "cnn": "D+sni"}


@dataclass(frozen=True)
class TrainingSet:
    """One training set of one kind of model.

    Use :func:`parse` to make one from its name.

    Attributes
    ----------
    kind : {"ae", "cnn"}
    name : str
        As written on the command line and in records, e.g. ``"D+sni"``.
    """

    kind: str
    name: str

    @property
    def sources(self):
        """The perturbation (AE) or positive (CNN) sources, e.g. ``("D", "sni")``; () for none."""
        return () if self.name in ("none", USE_CASE_2) else tuple(self.name.split("+"))

    @property
    def perturbed(self):
        """Whether an autoencoder trains on perturbed copies (False for none and use case 2)."""
        return bool(self.sources) and self.kind == "ae"

    @property
    def reconstructs_defects(self):
        """Use case 2: defect patches are inputs to reconstruct, like okay ones."""
        return self.name == USE_CASE_2

    @property
    def label(self):
        """The paper's spelling, e.g. ``"D+SNI"``.

        Examples
        --------
        >>> from weldlab.sets import parse
        >>> parse("cnn", "D+circular+partial_circle").label
        'D+SC+SPC'
        """
        if not self.sources:
            return LABELS[self.name]
        return "+".join(LABELS[s] for s in self.sources)

    def __str__(self):
        return self.name


def allowed(kind):
    """The set names a kind of model can be trained on.

    Examples
    --------
    >>> from weldlab.sets import allowed
    >>> allowed("ae")
    ('none', 'D', 'sni', 'D+sni', 'okay+defects')
    """
    if kind == "ae":
        return (*AE_SETS, USE_CASE_2)
    if kind == "cnn":
        return CNN_SETS
    raise ValueError(f"kind: expected 'ae' or 'cnn', got {kind!r}")


def parse(kind, name, what="training set"):
    """The :class:`TrainingSet` named ``name`` for ``kind``, or a clear error.

    Parameters
    ----------
    kind : {"ae", "cnn"}
    name : str or TrainingSet
    what : str
        How to name the value in the error (e.g. ``"--set"``).

    Returns
    -------
    TrainingSet

    Raises
    ------
    ValueError
        If ``name`` is not one of :func:`allowed` for ``kind``.

    Examples
    --------
    >>> from weldlab.sets import parse
    >>> parse("ae", "D+sni").sources
    ('D', 'sni')
    >>> parse("cnn", "none")
    Traceback (most recent call last):
    ...
    ValueError: training set: expected one of ('D', 'D+circular', 'D+circular+partial_circle', 'D+sni') for the cnn, got 'none'
    """
    if isinstance(name, TrainingSet):
        name = name.name
    names = allowed(kind)
    if name not in names:
        raise ValueError(f"{what}: expected one of {names} for the {kind}, got {name!r}")
    return TrainingSet(kind, name)


def label(name):
    """The paper's spelling of a set name or table column (``"blur"`` included).

    Examples
    --------
    >>> from weldlab.sets import label
    >>> label("D+sni"), label("none"), label("blur")
    ('D+SNI', 'None', 'blur baseline')
    """
    if name == "blur":
        return "blur baseline"
    kind = "cnn" if name in CNN_SETS and name not in AE_SETS else "ae"
    return parse(kind, name).label
