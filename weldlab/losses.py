"""The autoencoder's five-term loss (paper Eq. 1-5), in ``keras.ops`` only.

``L = L_ok + L_per + L_kern,ok + L_kern,per + L_reg`` with
``Delta_ok = crop(x_ok) - AE(x_ok)`` and ``Delta_per = crop(x_ok) - AE(x_per)``:

* ``L_ok``, ``L_per`` (:class:`ReconstructionLoss`): mean of ``Delta**2`` over the
  156 x 156 reconstructed pixels of a patch, averaged over the patches of a batch;
* ``L_kern`` (:class:`KernelMaxLoss`): per patch, the maximum over all positions of the
  squared 9 x 9 local mean of ``Delta`` (stride 1, valid positions only), averaged over
  patches;
* ``L_reg`` (:class:`CodeL1Loss`): ``0.01 * sum(|z|)`` per patch, **divided by the
  156 x 156 reconstructed pixels**, averaged over patches.

Normalisation, our choice: the paper writes its sums with a factor ``1/n`` whose ``n``
it does not define. We read every term per pixel: the two squared-error terms as means
over the reconstructed pixels, and the L1 term's sum over the 42 x 42 code divided by the
same 156**2 pixels. As a raw per-patch sum, ``0.01 * sum|z|`` could reach
0.01 * 1764 = 17.6, while a perfect reconstruction leaves squared errors of the order of
the squared film noise (0.0047**2 = 2e-5 on GDXray, chapter 1). Per pixel, ``L_reg`` is
at most 0.01 * 1764 / 156**2 = 7e-4; in short runs we measured it at 3e-4 to 6e-4 with
``z`` staying alive (mean about 0.4, all units active); ``tests/test_models.py`` trains
briefly and checks that ``z`` does not collapse.

The losses are registered Keras serialisable objects, so a compiled training model saved
as ``.keras`` loads with ``keras.saving.load_model`` in safe mode. The training model that
puts them together is :func:`weldlab.models.build_training_model`.
"""

from __future__ import annotations

import keras
from keras import ops

from .geometry import CODE_MARGIN, CROP, KERNEL, NETWORK_STRIDE, OFFSET

L1_WEIGHT = 0.01


def local_mean(x, kernel_size=KERNEL):
    """Mean over every ``k x k`` window at stride 1 (valid positions).

    Parameters
    ----------
    x : tensor, shape (batch, H, W, 1)

    Returns
    -------
    tensor, shape (batch, H - k + 1, W - k + 1, 1)
    """
    return ops.average_pool(x, pool_size=kernel_size, strides=1, padding="valid")


@keras.saving.register_keras_serializable(package="weldlab")
class ReconstructionLoss(keras.losses.Loss):
    """``L_ok`` / ``L_per``: per-patch mean squared residual (Eq. 3)."""

    def __init__(self, name="reconstruction", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        """Per-patch loss, shape (batch,)."""
        d = ops.cast(y_true, y_pred.dtype) - y_pred
        return ops.mean(ops.square(d), axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="weldlab")
class KernelMaxLoss(keras.losses.Loss):
    """``L_kern``: per-patch maximum of the squared 9 x 9 local mean residual (Eq. 4)."""

    def __init__(self, kernel_size=KERNEL, name="kernel_max", **kwargs):
        super().__init__(name=name, **kwargs)
        self.kernel_size = int(kernel_size)

    def call(self, y_true, y_pred):
        """Per-patch loss, shape (batch,)."""
        d = ops.cast(y_true, y_pred.dtype) - y_pred
        return ops.max(ops.square(local_mean(d, self.kernel_size)), axis=(1, 2, 3))

    def get_config(self):
        """The constructor's arguments (Keras serialisation)."""
        return {**super().get_config(), "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="weldlab")
class CodeL1Loss(keras.losses.Loss):
    """``L_reg``: ``weight * sum|z|`` per patch over the 156**2 reconstructed pixels.

    ``y_true`` is ignored (pass zeros of ``z``'s shape). ``pixels=None`` reads the number
    of reconstructed pixels from the code's side ``n`` (an input of side ``4n + 24`` gives
    ``(4n - 12)**2`` pixels: 156**2 for the 42 x 42 code of a patch), so that a model
    trained on crops (:func:`weldlab.models.build_autoencoder`'s ``any_size``) keeps the
    term per reconstructed pixel on crops and on whole patches.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.losses import CodeL1Loss
    >>> z = np.ones((1, 42, 42, 1), "float32")
    >>> fixed, per_side = CodeL1Loss(pixels=156 * 156), CodeL1Loss(pixels=None)
    >>> float(fixed.call(z, z)[0]) == float(per_side.call(z, z)[0]), round(float(fixed.call(z, z)[0]), 6)
    (True, 0.000725)
    >>> round(float(per_side.call(z[:, :18, :18], z[:, :18, :18])[0]), 6)  # a 96 px crop: 18**2 / 60**2
    0.0009
    """

    def __init__(self, weight=L1_WEIGHT, pixels=CROP * CROP, name="code_l1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weight, self.pixels = float(weight), None if pixels is None else int(pixels)

    def call(self, y_true, y_pred):
        """Per-patch loss, shape (batch,)."""
        pixels = self.pixels
        if pixels is None:
            code = ops.cast(ops.shape(y_pred)[1], y_pred.dtype)  # the input's side less the output's
            pixels = ops.square(NETWORK_STRIDE * code + CODE_MARGIN - 2 * OFFSET)
        return self.weight * ops.sum(ops.abs(y_pred), axis=(1, 2, 3)) / pixels

    def get_config(self):
        """The constructor's arguments (Keras serialisation)."""
        return {**super().get_config(), "weight": self.weight, "pixels": self.pixels}


#: Names of the five loss terms as they appear in the training history.
LOSS_TERMS = ("ok", "ok_kern", "per", "per_kern", "z")
