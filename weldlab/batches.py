"""Training batches, made on the fly: each a pure function of (seed, epoch, index).

* :class:`PerturbedPairs` (autoencoder): every augmented okay patch once per epoch, each
  paired with a perturbation drawn anew every epoch (paper §3.3), and the crop targets;
  optionally cut to random crops (:func:`crop_windows`), which cost a fraction of a patch.
* :class:`LabelledBatches` (CNN): class-balanced okay / not-okay batches.
* :func:`split_defect_patches`: the real defect patches held out to validate the CNN.

Because batch ``i`` of epoch ``e`` depends only on ``(seed, e, i)``, batches can be made
in any order, by any number of workers (``workers=2`` makes the next batches while the
model trains on the current one).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from .datasets import decode
from .geometry import PATCH, check_crop
from .models import training_targets
from .patches import augment
from .perturbations import apply_perturbation


class _EpochBatches(keras.utils.PyDataset):
    """A fixed number of batches per epoch, each a pure function of (seed, epoch, index).

    Subclasses implement ``batch(index, epoch)``; ``fixed=True`` uses epoch 0 always
    (validation sets that must not change between epochs). ``epoch`` is the epoch being
    trained, set from Keras's epoch number by :class:`weldlab.fitting.EpochOfBatches`; it
    is not counted here in ``on_epoch_end``, which Keras also calls once before the first
    epoch of every ``fit`` (measured: every epoch then got the next one's batches, and an
    okay-only warm-up epoch trained on perturbed pairs).
    """

    def __init__(self, steps, seed, fixed, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.seed, self.fixed, self.epoch = int(steps), int(seed), bool(fixed), 0
        self._memo = {}  # fixed sets: each batch is made once and reused every epoch

    def __len__(self):
        return self.steps

    def _epoch(self, epoch):
        return 0 if self.fixed else (self.epoch if epoch is None else epoch)

    def __getitem__(self, index):
        if not self.fixed:
            return self.batch(index)
        if index not in self._memo:
            self._memo[index] = self.batch(index)
        return self._memo[index]


class PerturbedPairs(_EpochBatches):
    """Batches of (okay, perturbed) patches with their targets.

    Parameters
    ----------
    okay : ndarray, shape (n, 192, 192), uint16 or float32
        Okay patches (uint16 as stored in the datasets, decoded per batch).
    perturbations : list of indexable perturbation sets, or empty
        Each ``pset[indices] -> (delta, support)``; one set is chosen uniformly per
        sample, then one of its members. Empty: no perturbation ("None").
    batch_size : int
    seed : int
    augment_okay : bool
        Use the x6 augmentation (one epoch = 6 n samples); False for validation.
    steps : int, optional
        Batches per epoch (default: all samples once).
    fixed : bool
        Same pairing every epoch (validation).
    clean_epochs : int
        A curriculum: in epochs before this one the "perturbed" input is the okay patch
        itself (no perturbation), so the model first learns to reconstruct okay patches.
        The training model still runs both branches on it, so a warm-up epoch costs as
        much as a perturbed one.
    crop : int, optional
        Train on crops: each pair is cut to the same random ``crop`` x ``crop`` window of
        its two patches (a side ``192 - 4k``, :func:`weldlab.geometry.check_crop`), and its targets
        are the window's centre (:func:`weldlab.models.training_targets`). None: whole
        patches.
    """

    def __init__(self, okay, perturbations, batch_size=16, seed=0, augment_okay=True, steps=None,
                 fixed=False, clean_epochs=0, crop=None, **kwargs):
        if len(okay) == 0:
            raise ValueError("okay: no okay patches to train on")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.okay, self.perturbations = okay, list(perturbations)
        self.batch_size, self.augment_okay = int(batch_size), augment_okay
        self.clean_epochs = int(clean_epochs)
        self.crop = check_crop(crop)
        self.samples = len(okay) * (6 if augment_okay else 1)
        super().__init__(steps or math.ceil(self.samples / self.batch_size), seed, fixed, **kwargs)

    def batch(self, index, epoch=None):
        """Batch ``index`` of ``epoch`` as NumPy arrays ``(inputs, targets)``."""
        epoch = self._epoch(epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.samples)
        start = (index * self.batch_size) % self.samples
        idx = np.take(order, np.arange(start, start + self.batch_size), mode="wrap")
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        if self.augment_okay:
            x = augment(np.asarray(self.okay[idx // 6]), idx % 6)
        else:
            x = np.asarray(self.okay[idx])
        x = decode(x) if x.dtype == np.uint16 else x.astype(np.float32)
        inputs = {"x_ok": x[..., None]}
        if self.perturbations and epoch < self.clean_epochs:
            inputs["x_per"] = inputs["x_ok"]
        elif self.perturbations:
            which = rng.integers(0, len(self.perturbations), len(idx))
            delta = np.empty_like(x)
            support = np.empty(x.shape, bool)
            for s, pset in enumerate(self.perturbations):
                sel = np.flatnonzero(which == s)
                if sel.size:
                    d, w = pset[rng.integers(0, len(pset), sel.size)]
                    op = rng.integers(0, 6, sel.size)
                    delta[sel], support[sel] = augment(d, op), augment(w, op)
            inputs["x_per"] = apply_perturbation(x, delta, support)[..., None]
        if self.crop is not None:
            inputs = crop_windows(inputs, self.crop, rng)
        return inputs, training_targets(inputs["x_ok"], perturbed=bool(self.perturbations))


def crop_windows(inputs, side, rng):
    """Cut every pair of ``inputs`` to one random ``side`` x ``side`` window.

    Parameters
    ----------
    inputs : dict of ndarray
        ``x_ok`` (and ``x_per``), shape (batch, 192, 192, 1); a pair's arrays get the same window.
    side : int
    rng : numpy.random.Generator

    Returns
    -------
    dict of ndarray
        The same keys, shape (batch, side, side, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.batches import crop_windows
    >>> x = np.arange(2 * 192 * 192, dtype="float32").reshape(2, 192, 192, 1)
    >>> out = crop_windows({"x_ok": x, "x_per": x + 1}, 96, np.random.default_rng(0))
    >>> out["x_ok"].shape, bool(np.all(out["x_per"] == out["x_ok"] + 1))
    ((2, 96, 96, 1), True)
    """
    n = len(inputs["x_ok"])
    top, left = rng.integers(0, PATCH - side + 1, (2, n))
    rows = top[:, None] + np.arange(side)  # (n, side)
    cols = left[:, None] + np.arange(side)
    pick = (np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :])
    return {k: np.ascontiguousarray(v[pick]) for k, v in inputs.items()}


class LabelledBatches(_EpochBatches):
    """Class-balanced batches for the supervised CNN.

    Half of every batch is okay patches (label 0, x6 augmented); the other half is label
    1, split evenly between the sources of the training set: real training defect
    patches for D (augmented); for SC, SPC and SNI a generated perturbation pasted into a
    random okay patch (Eq. 2), anew every epoch.

    Parameters
    ----------
    okay : ndarray, shape (n, 192, 192), uint16
    defects : ndarray, shape (m, 192, 192), uint16, or None
        Real defect patches for the ``"D"`` source.
    sources : dict of str -> perturbation set or None
        ``{"D": None, "sni": pset, ...}``; None draws real defect patches from
        ``defects``, a perturbation set pastes its members into okay patches.
    batch_size : int
        Even.
    seed : int
    steps : int, optional
        Batches per epoch (default: every augmented okay patch once, as half batches).
    fixed : bool
        Same batches every epoch (validation).
    """

    def __init__(self, okay, defects, sources, batch_size=32, seed=0, steps=None, fixed=False, **kwargs):
        if int(batch_size) < 2 or int(batch_size) % 2:
            raise ValueError(f"batch_size: expected an even integer >= 2, got {batch_size!r}")
        if any(v is None for v in sources.values()) and (defects is None or len(defects) == 0):
            raise ValueError("defects: a real-defect source (None) needs defect patches")
        self.okay, self.defects, self.sources = okay, defects, dict(sources)
        self.batch_size = int(batch_size)
        super().__init__(steps or math.ceil(6 * len(okay) / (self.batch_size // 2)), seed, fixed, **kwargs)

    def batch(self, index, epoch=None):
        """Batch ``index`` as ``(x, y)``: x (batch, 192, 192, 1) float32, y (batch, 1)."""
        epoch = self._epoch(epoch)
        rng = np.random.default_rng([self.seed, epoch, index, 2])
        half = self.batch_size // 2
        i = rng.integers(0, 6 * len(self.okay), half)
        x_ok = decode(augment(np.asarray(self.okay[i // 6]), i % 6))
        names = list(self.sources)
        which = rng.integers(0, len(names), half)
        pos = np.empty_like(x_ok)
        for s, name in enumerate(names):
            sel = np.flatnonzero(which == s)
            if not sel.size:
                continue
            if self.sources[name] is None:
                j = rng.integers(0, 6 * len(self.defects), sel.size)
                pos[sel] = decode(augment(np.asarray(self.defects[j // 6]), j % 6))
            else:
                base = rng.integers(0, 6 * len(self.okay), sel.size)
                x = decode(augment(np.asarray(self.okay[base // 6]), base % 6))
                d, w = self.sources[name][rng.integers(0, len(self.sources[name]), sel.size)]
                op = rng.integers(0, 6, sel.size)
                pos[sel] = apply_perturbation(x, augment(d, op), augment(w, op))
        x = np.concatenate([x_ok, pos])[..., None]
        y = np.concatenate([np.zeros(half), np.ones(half)]).astype(np.float32)[:, None]
        return x, y


#: Fraction of the real training-defect patches held out to validate the CNN.
CNN_VALIDATION_DEFECTS = 0.1


def split_defect_patches(defects, fraction=CNN_VALIDATION_DEFECTS):
    """Split the real training-defect patches into CNN training and validation parts.

    The split is a fixed random permutation (seed 0), the same for every model seed, so
    the three seeds of a configuration are validated on the same patches. A CNN trained
    on real defect patches must be validated on real defect patches: validating it on
    defects pasted into okay patches (what the autoencoder is validated on) measures a
    different task: in a trial on GDXray its validation accuracy stayed at or below 0.5
    while the training accuracy rose to 0.6.

    Parameters
    ----------
    defects : ndarray, shape (m, 192, 192), uint16
    fraction : float
        In (0, 1).

    Returns
    -------
    train, val : ndarray, shapes (m - k, 192, 192) and (k, 192, 192)
        ``k = max(1, round(fraction * m))``; rows in their original order.
    """
    m = len(defects)
    if m < 2:
        raise ValueError(f"defects: need at least 2 real defect patches to hold some out, got {m}")
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction: expected a number in (0, 1), got {fraction!r}")
    k = min(m - 1, max(1, round(float(fraction) * m)))
    held = np.zeros(m, bool)
    held[np.random.default_rng(0).permutation(m)[:k]] = True
    return np.asarray(defects[np.flatnonzero(~held)]), np.asarray(defects[np.flatnonzero(held)])
