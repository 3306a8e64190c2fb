import numpy as np
import pytest
from scipy import ndimage as ndi

from weldlab import patches as P
from weldlab.simulate import simulate_radiograph


@pytest.fixture(scope="module")
def radiograph():
    return simulate_radiograph(np.random.default_rng(7), 600, 2400, defects_per_kpx=5.0)


@pytest.fixture(scope="module")
def sampled(radiograph):
    return P.sample_patches(radiograph.image, radiograph.mask, 60, 60, np.random.default_rng(2))


def test_rotated_footprint_inside_image(rng):
    centres, theta = P.random_placements(rng, (400, 900), 500)
    coords = P.patch_coordinates(centres, theta)
    assert coords[0].min() >= 0 and coords[0].max() <= 399
    assert coords[1].min() >= 0 and coords[1].max() <= 899
    assert theta.min() >= 0 and theta.max() < 2 * np.pi


def test_image_too_small_for_rotated_patches(rng):
    with pytest.raises(ValueError, match="too small"):
        P.random_placements(rng, (250, 900), 10)


def test_zero_rotation_is_a_plain_crop(rng):
    img = rng.random((300, 400)).astype(np.float32)
    p = P.extract_patches(img, np.array([[150.5, 200.5]]), np.array([0.0]))[0]
    top, left = int(150.5 - 95.5), int(200.5 - 95.5)
    assert np.allclose(p, img[top: top + 192, left: left + 192], atol=1e-6)


def test_okay_patches_hold_no_defect(radiograph, sampled):
    okay, _ = sampled
    assert len(okay["patches"]) == 60
    grown = ndi.binary_dilation(radiograph.mask, iterations=P.OKAY_MARGIN)
    fp = P.extract_patches(grown, okay["centres"], okay["theta"], order=0)
    assert not fp.any()


def test_defect_patches_have_defect_in_central_region(radiograph, sampled):
    _, defect = sampled
    assert len(defect["patches"]) == 60
    assert defect["masks"].dtype == bool
    assert P.crop(defect["masks"]).reshape(60, -1).any(axis=1).all()
    again = P.extract_patches(radiograph.mask, defect["centres"], defect["theta"], order=0)
    assert np.array_equal(again, defect["masks"])


def test_sampling_is_seeded(radiograph):
    a = P.sample_patches(radiograph.image, radiograph.mask, 10, 10, np.random.default_rng(5))
    b = P.sample_patches(radiograph.image, radiograph.mask, 10, 10, np.random.default_rng(5))
    assert np.array_equal(a[0]["patches"], b[0]["patches"]) and np.array_equal(a[1]["masks"], b[1]["masks"])


def test_sampler_rejects_bad_input(radiograph):
    with pytest.raises(ValueError, match="n_okay"):
        P.sample_patches(radiograph.image, radiograph.mask, -1, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not match"):
        P.sample_patches(radiograph.image, radiograph.mask[:, :-1], 1, 1, np.random.default_rng(0))
    bad = radiograph.image.copy()
    bad[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        P.sample_patches(bad, radiograph.mask, 1, 1, np.random.default_rng(0))


def test_six_augmentations(rng):
    x = rng.random((3, 192, 192)).astype(np.float32)
    expected = [x, np.rot90(x, 1, (1, 2)), np.rot90(x, 2, (1, 2)), np.rot90(x, 3, (1, 2)), x[:, ::-1], x[:, :, ::-1]]
    for k, e in enumerate(expected):
        assert np.array_equal(P.augment(x, k), e)
    view = P.AugmentedPatches(x)
    assert len(view) == 18
    batch = view[np.arange(18)]
    assert len({b.tobytes() for b in batch}) == 18
    assert np.array_equal(view[np.array([7])][0], np.rot90(x[1], 1))
    with pytest.raises(ValueError, match="0..5"):
        P.augment(x, 6)
    with pytest.raises(IndexError):
        view[np.array([18])]


def test_contrast_to_noise_recovers_a_known_defect(rng):
    n = 4
    x = 0.4 + 0.005 * rng.standard_normal((n, 192, 192))
    m = np.zeros((n, 192, 192), bool)
    yy, xx = np.mgrid[:192, :192]
    disc = (yy - 96) ** 2 + (xx - 96) ** 2 <= 10 ** 2
    m[:] = disc
    x[:, disc] -= 0.03
    cnr, contrast, noise = P.contrast_to_noise(x, m)
    assert np.allclose(contrast, -0.03, atol=0.002)
    # White noise after a sigma=4 high-pass keeps ~99 % of its std.
    assert np.allclose(noise, 0.005, rtol=0.05)
    assert np.allclose(cnr, 6.0, rtol=0.1)
    assert list(P.contrast_class(np.array([0.5, 3.0, 6.9, 7.0, 50]))) == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="cutoffs"):
        P.contrast_class(cnr, (5, 2))


def test_chunked_statistics_equal_unchunked(radiograph):
    from weldlab.perturbations import real_defect_perturbations

    _, d = P.sample_patches(radiograph.image, radiograph.mask, 0, 12, np.random.default_rng(9))
    whole = P.contrast_to_noise(d["patches"], d["masks"], chunk=100)
    parts = P.contrast_to_noise(d["patches"], d["masks"], chunk=5)
    for a, b in zip(whole, parts):
        assert np.array_equal(a, b)
    a = real_defect_perturbations(d["patches"], d["masks"], chunk=100)
    b = real_defect_perturbations(d["patches"], d["masks"], chunk=5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
