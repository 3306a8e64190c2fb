import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

from weldlab.models import build_autoencoder  # noqa: E402
from weldlab.scan import fully_convolutional, reconstruct, residual_map, scan_maps  # noqa: E402


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(3)
    ae = build_autoencoder(seed=3)
    # random weights give near-constant outputs; scale kernels so the output varies
    for sub in ("encoder", "decoder"):
        for layer in ae.get_layer(sub).layers:
            if layer.weights:
                k, b = layer.get_weights()
                layer.set_weights([k * 1.5, b + 0.01])
    return ae, fully_convolutional(ae)


def test_whole_image_pass_equals_patch_by_patch(models, rng):
    ae, fc = models
    image = rng.random((300, 420)).astype(np.float32)
    single = reconstruct(fc, image, tile=4096)
    assert single.shape == (264, 384)
    tiled = reconstruct(fc, image, tile=64)  # many tiles
    assert np.abs(tiled - single).max() < 1e-6  # the tiling is seamless
    for top, left in ((0, 0), (44, 100), (108, 228)):  # patch corners on the stride-4 grid
        patch = image[top: top + 192, left: left + 192]
        direct = ae.predict(patch[None, ..., None], verbose=0)[0, ..., 0]
        whole = single[top: top + 156, left: left + 156]
        # Identical inside; within 4 px of a patch edge a lone patch's transposed
        # convolutions miss the pixels beyond it, which the whole-image pass has.
        assert np.abs(whole - direct)[4:-4, 4:-4].max() < 1e-5, (top, left)
        if top:
            assert np.abs(whole - direct)[:4].max() > 1e-4


def test_residual_and_flag_maps(models, rng):
    _, fc = models
    image = rng.random((200, 233)).astype(np.float32)
    r = residual_map(fc, image)
    assert r.shape == (164, 197)
    out = scan_maps(fc, image, {"t_mean": 0.1, "t_std": 0.1})
    assert out["flags"].shape == out["mean"].shape == (156, 189)
    with pytest.raises(ValueError, match="too small"):
        reconstruct(fc, np.zeros((150, 400), np.float32))
