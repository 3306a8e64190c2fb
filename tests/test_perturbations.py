import numpy as np
import pytest
from scipy import ndimage as ndi

from weldlab import perturbations as pert
from weldlab.geometry import CROP, OFFSET


def test_real_defect_regions_referenced_to_their_ring():
    x = np.full((1, 192, 192), 0.5)
    m = np.zeros((1, 192, 192), bool)
    m[0, 50:55, 50:55] = True
    x[0, 50:55, 50:55] = 0.3
    x[0, 49, 48:57] = 0.6  # part of the first region's 1-px ring (8-connected)
    m[0, 120:124, 100:110] = True
    x[0, 120:124, 100:110] = 0.45
    delta, w = pert.real_defect_perturbations(x, m)
    ring1 = ndi.binary_dilation(m[0] & (np.arange(192)[:, None] < 100), np.ones((3, 3))) & ~m[0]
    assert np.allclose(delta[0, 50:55, 50:55], 0.3 - x[0][ring1].mean(), atol=1e-6)
    assert np.allclose(delta[0, 120:124, 100:110], 0.45 - 0.5, atol=1e-6)
    assert np.array_equal(w, m) and np.all(delta[0][~m[0]] == 0)


def test_eq2_masking_and_shape_errors(rng):
    x = np.full((2, 192, 192), 0.5, np.float32)
    d = np.full_like(x, 0.1)
    w = np.zeros(x.shape, bool)
    w[:, :10] = True
    y = pert.apply_perturbation(x, d, w)
    assert np.allclose(y[:, :10], 0.6) and np.allclose(y[:, 10:], 0.5)
    with pytest.raises(ValueError, match="shapes"):
        pert.apply_perturbation(x, d[:1], w)


def test_random_walk_region(rng):
    region = pert.grow_region(rng, 3000, 1.0, (300, 300))
    assert len(region) == 3000
    assert len({tuple(p) for p in region}) == 3000
    img = np.zeros((300, 300), bool)
    img[region[:, 0], region[:, 1]] = True
    assert ndi.label(img, np.ones((3, 3)))[1] == 1  # one 8-connected region


def test_elongation_stretches_regions():
    def aspect(e, seed):
        r = pert.grow_region(np.random.default_rng(seed), 2000, e, (400, 400)).astype(float)
        ev = np.linalg.eigvalsh(np.cov(r.T))
        return np.sqrt(ev[1] / ev[0])

    round_ = np.median([aspect(1.0, s) for s in range(12)])
    long_ = np.median([aspect(40.0, s) for s in range(12)])
    assert long_ > 1.2 * round_


def test_sni_follows_the_rules():
    src = pert.natural_images()
    assert len(src) >= 5 and all(s.dtype == np.float32 and s.max() <= 1 for s in src)
    for seed in range(8):
        delta, w, info = pert.sni_perturbation(np.random.default_rng(seed), src)
        assert 1 <= len(info["regions"]) <= 4
        for reg in info["regions"]:
            assert 0.05 <= reg["amplitude"] <= 0.2 and 1 <= reg["elongation"] <= 40
            lo, hi = (2, 9) if reg["psf"] == "gaussian" else (0.15, 0.4)
            assert lo <= reg["psf_width"] <= hi
        assert np.abs(delta).max() <= 0.2 * len(info["regions"]) + 1e-6
        assert np.array_equal(w, np.abs(delta) >= pert.SUPPORT_LEVEL)


def test_natural_image_folder(tmp_path):
    import imageio.v3 as iio

    with pytest.raises(FileNotFoundError, match="no PNG"):
        pert.natural_images(tmp_path)
    iio.imwrite(tmp_path / "a.png", (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8))
    imgs = pert.natural_images(tmp_path)
    assert len(imgs) == 1 and imgs[0].shape == (64, 80)


def test_indications_inside_crop_and_amplitudes():
    peaks = pert.indication_peak_amplitudes(seed=0, n=5)
    for v in peaks.values():
        assert np.sign(v["after_smoothing"]) == np.sign(v["nominal"])
        assert abs(v["after_smoothing"]) < abs(v["nominal"])
    rng = np.random.default_rng(0)
    for kind in pert.INDICATIONS:
        d, w = pert.indication_perturbation(kind, rng)
        cy, cx = np.unravel_index(np.abs(d).argmax(), d.shape)
        assert OFFSET <= cy < OFFSET + CROP and OFFSET <= cx < OFFSET + CROP
    assert pert.indication_shape("circular", rng).min() == -0.1
    with pytest.raises(ValueError, match="unknown indication"):
        pert.indication_shape("star", rng)


def test_generated_sets_are_reproducible_by_index():
    g = pert.GeneratedPerturbations("sni", 50, seed=3)
    a, wa = g[np.array([4, 9])]
    b, wb = g[np.array([9, 4])]
    assert np.array_equal(a[0], b[1]) and np.array_equal(wa[1], wb[0])
    with pytest.raises(IndexError):
        g[np.array([50])]
    with pytest.raises(ValueError, match="kind"):
        pert.GeneratedPerturbations("blob", 5, 0)
