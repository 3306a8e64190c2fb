"""The patch geometry (weldlab.geometry) agrees with the networks and the scan built on it."""

import numpy as np
import pytest

from weldlab import geometry
from weldlab.models import build_autoencoder, encoder_of
from weldlab.tiling import fully_convolutional


def test_the_autoencoder_has_the_geometry_s_shapes():
    ae = build_autoencoder(0)
    assert ae.input.shape[1:] == (geometry.PATCH, geometry.PATCH, 1)
    assert ae.output.shape[1:] == (geometry.CROP, geometry.CROP, 1)
    assert encoder_of(ae).output.shape[1:] == (geometry.CODE_SIZE, geometry.CODE_SIZE, 1)
    assert geometry.PATCH - 2 * geometry.OFFSET == geometry.CROP


def test_a_whole_image_grows_the_output_by_the_network_stride():
    fc = fully_convolutional(build_autoencoder(0))
    side = geometry.PATCH + 3 * geometry.NETWORK_STRIDE
    out = fc.predict(np.zeros((1, side, side, 1), np.float32), verbose=0)
    assert out.shape[1:3] == (side - 2 * geometry.OFFSET,) * 2


def test_window_centres_and_patch_checks():
    from weldlab.residuals import kernel_statistics

    # a patch's residual maps hold one window per centre from the margin to side - 1 - margin
    for k in (geometry.KERNEL, geometry.QUIET_KERNEL):
        mean, _ = kernel_statistics(np.zeros((1, geometry.CROP, geometry.CROP), np.float32), k)
        assert mean.shape[-1] == geometry.PATCH - 2 * geometry.window_centre_margin(k)
    with pytest.raises(ValueError, match=r"okay: expected shape \(n, 192, 192\), got \(2, 191, 192\)"):
        geometry.check_patches(np.zeros((2, 191, 192)), "okay")
