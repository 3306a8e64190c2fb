import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from weldlab import losses as L  # noqa: E402
from weldlab.geometry import OFFSET  # noqa: E402
from weldlab.models import (  # noqa: E402
    AE_PARAMETERS, CNN_PARAMETERS, build_autoencoder, build_cnn, build_training_model, compile_training_model,
    load_model, training_targets,
)


@pytest.fixture(scope="module")
def ae():
    keras.utils.set_random_seed(0)
    return build_autoencoder(seed=0)


def test_autoencoder_shapes_and_parameter_count(ae):
    assert ae.count_params() == AE_PARAMETERS == 41_186
    enc, dec = ae.get_layer("encoder"), ae.get_layer("decoder")
    expected = {"e1_conv1": 190, "e1_conv2": 188, "e1_down": 93, "e2_conv1": 91, "e2_conv2": 89,
                "e2_down": 44, "z": 42}
    for name, size in expected.items():
        assert enc.get_layer(name).output.shape[1:] == (size, size, 1 if name == "z" else enc.get_layer(name).output.shape[-1])
    for name, size in {"d1_up": 85, "d1_conv1": 83, "d1_conv2": 81, "d2_up": 162, "d2_conv1": 160,
                       "d2_conv2": 158, "reconstruction": 156}.items():
        assert dec.get_layer(name).output.shape[1:3] == (size, size)
    assert ae.output.shape[1:] == (156, 156, 1)
    z = enc.predict(np.random.default_rng(0).random((2, 192, 192, 1), np.float32) * 5, verbose=0)
    assert z.min() >= 0.0 and z.max() <= 1.0  # bounded ReLU


def test_cnn_shapes_and_parameter_count():
    cnn = build_cnn(seed=0)
    assert cnn.count_params() == CNN_PARAMETERS == 223_221
    p = cnn.predict(np.zeros((2, 192, 192, 1), np.float32), verbose=0)
    assert p.shape == (2, 1) and np.all((p > 0) & (p < 1))
    assert cnn.get_layer("b4_pool").output.shape[1:] == (8, 8, 40)


def test_cnn_standardises_each_patch(rng):
    """weldlab's one addition to the CNN: each patch to zero mean and unit std, so the
    output does not depend on a patch's overall brightness and contrast."""
    cnn = build_cnn(seed=0)
    x = rng.random((3, 192, 192, 1)).astype(np.float32) * 0.5
    z = np.asarray(cnn.get_layer("standardise")(x))
    assert np.allclose(z.mean(axis=(1, 2, 3)), 0, atol=1e-5) and np.allclose(z.std(axis=(1, 2, 3)), 1, atol=5e-3)
    p = cnn.predict(x, verbose=0)
    assert np.allclose(cnn.predict(0.9 * x + 0.05, verbose=0), p, atol=1e-4)
    flat = cnn.predict(np.full((1, 192, 192, 1), 0.7, np.float32), verbose=0)
    assert np.allclose(flat, cnn.predict(np.zeros((1, 192, 192, 1), np.float32), verbose=0))  # no NaN


def test_output_geometry(ae):
    """With centre-tap kernels, output pixel r lies over input pixel r + 17; the loss
    compares with the centred crop (offset 18), a one-pixel shift the 3x3 kernels learn."""
    model = keras.models.clone_model(ae)
    for sub in (model.get_layer("encoder"), model.get_layer("decoder")):
        for layer in sub.layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                k, b = layer.get_weights()
                k[:] = 0
                fan_in = k.shape[3] if isinstance(layer, keras.layers.Conv2DTranspose) else k.shape[2]
                k[1, 1] = 1.0 / fan_in
                layer.set_weights([k, np.zeros_like(b)])
    yy, xx = np.mgrid[:192, :192]
    x = 0.5 * np.exp(-((yy - 80.3) ** 2 + (xx - 110.7) ** 2) / (2 * 12.0**2))
    out = model.predict(x[None, ..., None].astype("float32"), verbose=0)[0, ..., 0]
    w = out / out.sum()
    oy, ox = (w * np.mgrid[:156, :156][0]).sum(), (w * np.mgrid[:156, :156][1]).sum()
    assert abs(80.3 - oy - 17) < 0.01 and abs(110.7 - ox - 17) < 0.01
    assert OFFSET == 18


def test_kernel_max_loss_matches_numpy(rng):
    y = rng.random((3, 156, 156, 1)).astype("float32")
    p = rng.random((3, 156, 156, 1)).astype("float32")
    d = (y - p)[..., 0].astype(np.float64)
    mean9 = ndi.uniform_filter(d, size=(1, 9, 9), mode="constant")[:, 4:-4, 4:-4]
    expected = (mean9**2).reshape(3, -1).max(axis=1)
    got = keras.ops.convert_to_numpy(L.KernelMaxLoss().call(y, p))
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-9)
    assert np.isclose(float(L.KernelMaxLoss()(y, p)), expected.mean(), rtol=1e-4)
    mse = keras.ops.convert_to_numpy(L.ReconstructionLoss().call(y, p))
    assert np.allclose(mse, (d**2).reshape(3, -1).mean(axis=1), rtol=1e-5)
    z = rng.random((3, 42, 42, 1)).astype("float32")
    l1 = keras.ops.convert_to_numpy(L.CodeL1Loss().call(np.zeros_like(z), z))
    assert np.allclose(l1, 0.01 * z.reshape(3, -1).sum(1) / 156**2, rtol=1e-5)


def test_short_training_does_not_collapse_z(ae):
    keras.utils.set_random_seed(1)
    model = compile_training_model(build_training_model(ae, perturbed=True))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:192, :192]
    base = 0.3 + 0.3 * np.exp(-((yy - 96) ** 2) / (2 * 40.0**2))
    first = None
    for _ in range(25):
        x = (base + 0.005 * rng.standard_normal((8, 192, 192))).astype("float32")[..., None]
        xp = x.copy()
        xp[:, 60:90, 60:90] -= 0.1
        logs = model.train_on_batch({"x_ok": x, "x_per": xp}, training_targets(x), return_dict=True)
        first = first or logs["loss"]
        assert set(logs) >= {f"{t}_loss" for t in L.LOSS_TERMS}
    assert logs["loss"] < first
    z = ae.get_layer("encoder").predict(x, verbose=0)
    assert z.mean() > 0.01 and (z > 0).mean() > 0.1


def test_save_and_load_in_safe_mode(ae, tmp_path):
    f = tmp_path / "ae.keras"
    ae.save(f)
    again = load_model(f)
    x = np.random.default_rng(2).random((1, 192, 192, 1)).astype("float32")
    assert np.allclose(again.predict(x, verbose=0), ae.predict(x, verbose=0), atol=1e-6)
    tm = compile_training_model(build_training_model(again, perturbed=False))
    tm.save(tmp_path / "training.keras")
    loaded = load_model(tmp_path / "training.keras")
    assert isinstance(loaded.loss["ok_kern"], L.KernelMaxLoss)






@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_code_starts_alive_for_every_seed(seed):
    # With a zero bias, the single-channel code of some seeds started (and stayed) at 0.
    from weldlab.models import Z_BIAS_INIT, build_autoencoder

    keras.utils.set_random_seed(seed)
    enc = build_autoencoder(seed).get_layer("encoder")
    assert float(keras.ops.convert_to_numpy(enc.get_layer("z_conv").bias)[0]) == Z_BIAS_INIT
    yy = np.mgrid[:192, :192][0]
    x = (0.3 + 0.3 * np.exp(-((yy - 96) ** 2) / (2 * 40.0**2)))[None, ..., None].astype("float32")
    z = keras.ops.convert_to_numpy(enc(x, training=False))
    assert (z > 0).mean() > 0.5


@pytest.mark.parametrize("patch_mean", [False, True])
def test_intensity_scaling_adds_no_parameters_and_saves_in_safe_mode(patch_mean, tmp_path):
    from weldlab.models import IntensityScaling, inference_autoencoder, scaling_of

    rng = np.random.default_rng(0)
    patches = rng.normal(0.4, 0.05, (8, 192, 192)).astype("float32")
    scaling = IntensityScaling.from_patches(patches, patch_mean=patch_mean)
    ae = build_autoencoder(0, scaling)
    assert ae.count_params() == 41_186 and ae.output.shape[1:] == (156, 156, 1)
    x = patches[:2, ..., None]
    if patch_mean:  # a brighter exposure of the same patch is reconstructed just as much brighter
        assert np.allclose(ae.predict(x + 0.1, verbose=0), ae.predict(x, verbose=0) + 0.1, atol=1e-5)
    tm = compile_training_model(build_training_model(ae, perturbed=True), okay_weight=10.0)
    tm.save(tmp_path / "training.keras")
    back = inference_autoencoder(load_model(tmp_path / "training.keras"))
    assert scaling_of(back) == scaling
    assert np.allclose(back.predict(x, verbose=0), ae.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        IntensityScaling(0.0, 0.0)


def test_a_fixed_size_copy_keeps_the_weights_and_the_intensity_map():
    from weldlab.models import IntensityScaling, fixed_size, scaling_of

    rng = np.random.default_rng(1)
    patches = rng.normal(0.4, 0.05, (2, 192, 192)).astype("float32")
    scaling = IntensityScaling(0.3, 4.0)
    any_size = build_autoencoder(0, scaling, any_size=True)
    any_size.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in any_size.get_weights()])
    fixed = fixed_size(any_size, seed=3)
    assert fixed.input.shape[1:3] == (192, 192) and scaling_of(fixed) == scaling  # what scripts/ship_models.py ships
    assert all(np.array_equal(a, b) for a, b in zip(fixed.get_weights(), any_size.get_weights()))
    x = patches[..., None]
    assert np.allclose(fixed.predict(x, verbose=0), any_size.predict(x, verbose=0), atol=1e-6)
