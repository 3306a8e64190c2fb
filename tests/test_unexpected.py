import numpy as np
import pytest

from weldlab import perturbations
from weldlab.unexpected import (EXPECTED_KINDS, FILM_HELD_OUT_KINDS, FILM_KINDS, HELD_OUT_IMAGES, HELD_OUT_KINDS,
                                UNEXPECTED_KINDS, expected_variations, held_out_inputs,
                                unexpected_films, unexpected_inputs)


def test_every_kind_is_made_seeded_and_differs_from_okay(rng):
    okay = (0.35 + 0.1 * rng.random((6, 192, 192))).astype(np.float32)
    a, b = unexpected_inputs(okay, n=4, seed=2), unexpected_inputs(okay, n=4, seed=2)
    assert tuple(a) == UNEXPECTED_KINDS
    for kind, x in a.items():
        assert x.shape == (4, 192, 192) and x.dtype == np.float32, kind
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1, kind
        assert np.array_equal(x, b[kind]), kind
    assert np.all(a["blank"] == a["blank"][:, :1, :1])
    assert np.allclose(a["inverted"].mean(), 1 - okay.mean(), atol=0.02)
    assert (a["markers"].max(axis=(1, 2)) > okay.max() + 0.1).all()  # bright lead letters
    assert not np.array_equal(unexpected_inputs(okay, n=4, seed=3)["markers"], a["markers"])
    with pytest.raises(ValueError, match="okay"):
        unexpected_inputs(np.zeros((3, 100, 100)))
    with pytest.raises(ValueError, match="n:"):
        unexpected_inputs(okay, n=0)


def test_rotated_patches_are_a_control_not_an_unexpected_kind(rng):
    # training patches are cut at every angle, so a rotated okay patch is an okay patch
    okay = (0.35 + 0.1 * rng.random((6, 192, 192))).astype(np.float32)
    a = expected_variations(okay, n=3, seed=1)
    assert tuple(a) == EXPECTED_KINDS == ("rotated",) and "rotated" not in UNEXPECTED_KINDS
    assert a["rotated"].shape == (3, 192, 192) and a["rotated"].dtype == np.float32
    assert np.array_equal(a["rotated"], expected_variations(okay, n=3, seed=1)["rotated"])
    assert not np.array_equal(a["rotated"], expected_variations(okay, n=3, seed=2)["rotated"])


def test_held_out_images_are_not_sni_sources():
    assert HELD_OUT_IMAGES and set(HELD_OUT_IMAGES).isdisjoint(perturbations.SNI_IMAGES)
    # natural_images() draws exactly SNI_IMAGES (those available without a download)
    assert len(perturbations.natural_images()) == len(perturbations.skimage_gray(perturbations.SNI_IMAGES))


def test_films_are_made_unexpected_as_patches_are(rng):
    assert set(FILM_KINDS) <= set(UNEXPECTED_KINDS) and set(FILM_HELD_OUT_KINDS) <= set(HELD_OUT_KINDS)
    film = (0.35 + 0.1 * rng.random((300, 700))).astype(np.float32)
    a, b = unexpected_films(film, seed=1), unexpected_films(film, seed=1)
    assert tuple(a) == (*FILM_KINDS, *FILM_HELD_OUT_KINDS)
    for kind, x in a.items():
        assert x.shape == film.shape and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1, kind
        assert np.array_equal(x, b[kind]) and not np.allclose(x, film, atol=1e-3), kind
    assert np.array_equal(a["inverted"], 1 - film)
    # the same operation as the patch kind of that name (those that draw no random numbers)
    patch = film[:192, :192]
    for kind in ("inverted", "saturated", "magnified", "blurred", "rescaled", "sharpened"):
        made = {**unexpected_inputs(patch[None], n=1), **held_out_inputs(patch[None], n=1)}[kind][0]
        assert np.allclose(unexpected_films(patch)[kind], made, atol=1e-6), kind
    # magnified x2 about the centre: a ramp keeps its centre value and climbs half as fast
    ramp = np.tile(np.linspace(0.2, 0.8, 700, dtype=np.float32), (300, 1))
    magnified = unexpected_films(ramp)["magnified"][150]
    assert np.polyfit(np.arange(700), magnified, 1)[0] == pytest.approx(0.6 / 699 / 2, rel=0.01)
    assert magnified[350] == pytest.approx(ramp[150, 350], abs=0.002)
    with pytest.raises(ValueError, match="film"):
        unexpected_films(np.zeros((100, 700)))
