"""A physically grounded simulator of digitised film radiographs of butt welds.

The chain follows how a weld radiograph is made (weldlab's own model, calibrated to
GDXray with the estimators of :mod:`weldlab.calibration`):

1. **Thickness map** ``t(y, x)`` in mm: plate of thickness ``T`` plus the weld bead's
   reinforcement cap (a rounded profile whose centre line meanders and whose width varies
   along the weld), solidification ripples, and undercut grooves at the bead toes.
2. **Defects** change the thickness locally: pores (spheres), clustered porosity,
   elongated pores and worm holes, slag inclusions (partly attenuating), cracks, lack of
   fusion along a toe, incomplete penetration along the root, and the rare tungsten
   inclusion, which attenuates *more* than steel and so shows brighter. Each defect has an
   exact pixel mask and a type code.
3. **Beer–Lambert** attenuation ``E = E0 exp(-mu t)`` with a smooth exposure gradient
   along the weld (heel effect, film-to-source distance).
4. **Unsharpness**: a Gaussian or Lorentzian point-spread function on the log exposure.
5. **Film and digitiser**: optical density rises linearly with log exposure (film
   gradient ``G``); the scanner maps a density window to [0, 1], dense (dark) film to low
   values, so thick metal is bright and voids are dark, as in GDXray.
6. **Film grain**: spatially correlated Gaussian noise whose standard deviation grows
   with the square root of the optical density (Siedentopf), then 8-bit quantisation.

Everything is drawn from one ``numpy.random.Generator``; a seed gives the same
radiographs bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .perturbations import lorentzian_psf
from .geometry import MIN_SIDE
from .radiographs import GDXRAY_PIXEL_MM, Radiograph

#: Defect type codes used in ``Radiograph.labels``.
DEFECT_TYPES = {
    1: "pore",
    2: "porosity",
    3: "wormhole",
    4: "slag",
    5: "crack",
    6: "lack_of_fusion",
    7: "incomplete_penetration",
    8: "tungsten",
}
#: Relative frequency of each defect type.
DEFECT_FREQUENCY = {
    "pore": 0.24,
    "porosity": 0.12,
    "wormhole": 0.12,
    "slag": 0.16,
    "crack": 0.10,
    "lack_of_fusion": 0.10,
    "incomplete_penetration": 0.10,
    "tungsten": 0.06,
}
#: Thickness change (mm) above which a pixel belongs to a defect's mask.
MASK_THRESHOLD_MM = 0.02
#: Linear attenuation of steel (1/mm) at a typical 200-300 kV weld exposure.
MU_STEEL = 0.08


def _ellipsoid(a, b, theta, px=GDXRAY_PIXEL_MM):
    """Thickness change (mm, negative) of an elongated void.

    ``a`` and ``b`` are semi-axes in px, ``theta`` the orientation in radians; the beam
    path through the void is taken as twice the minor semi-axis at the centre.
    """
    half = int(np.ceil(max(a, b))) + 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    q = (u / a) ** 2 + (v / b) ** 2
    return -2.0 * b * px * np.sqrt(np.clip(1.0 - q, 0.0, None))


def _path_defect(rng, length, width, depth, heading, wander):
    """Thickness change (mm, negative) of a thin planar defect along a random path."""
    n = max(int(length), 4)
    angles = heading + np.cumsum(rng.normal(0.0, wander, n))
    ys = np.cumsum(np.sin(angles))
    xs = np.cumsum(np.cos(angles))
    pad = int(np.ceil(width)) + 4
    y0, x0 = ys.min() - pad, xs.min() - pad
    shape = (int(ys.max() - y0) + pad + 1, int(xs.max() - x0) + pad + 1)
    line = np.zeros(shape)
    line[np.round(ys - y0).astype(int), np.round(xs - x0).astype(int)] = 1.0
    dist = ndi.distance_transform_edt(line == 0)
    profile = np.clip(1.0 - (dist / (0.5 * width + 0.5)) ** 2, 0.0, None)
    # Depth tapers towards both ends of the path.
    taper = np.sin(np.linspace(0.05, np.pi - 0.05, n)) ** 0.5
    along = np.zeros(shape)
    along[np.round(ys - y0).astype(int), np.round(xs - x0).astype(int)] = taper
    along = ndi.grey_dilation(along, size=(int(width) + 3, int(width) + 3))
    return -depth * profile * along, (int(round(-y0)), int(round(-x0)))


def _slag(rng, size, px=GDXRAY_PIXEL_MM):
    """Thickness change (mm, negative) of an irregular slag inclusion of ~``size`` px."""
    half = int(size) + 4
    shape = (2 * half + 1, 2 * half + 1)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    a, b = size / 2.0, size / 2.0 * rng.uniform(0.3, 0.8)
    theta = rng.normal(0.0, 0.3)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    envelope = 1.0 - (u / a) ** 2 - (v / b) ** 2
    texture = ndi.gaussian_filter(rng.normal(size=shape), 2.0)
    texture /= texture.std() + 1e-12
    body = np.clip(envelope + 0.35 * texture, 0.0, None)
    body = np.sqrt(body / (body.max() + 1e-12))
    # Slag attenuates about 60 % as much as steel: a void of 40 % of its thickness.
    return -0.4 * 2.0 * b * px * body


def _defect_thickness(kind, rng):
    """Local thickness change (mm) and its anchor offset for one defect.

    Returns
    -------
    dt : ndarray, shape (h, w), float64
    anchor : tuple of int
        Pixel of ``dt`` placed at the defect's position.
    """
    if kind == "pore":
        r = rng.uniform(1.5, 7.0)
        dt = _ellipsoid(r, r, 0.0)
    elif kind == "tungsten":
        r = rng.uniform(1.5, 4.0)
        # Tungsten attenuates ~6x more than steel: a void of negative thickness, x5.
        dt = -5.0 * _ellipsoid(r, r, 0.0)
    elif kind == "porosity":
        half = int(rng.uniform(20, 45))
        dt = np.zeros((2 * half + 1, 2 * half + 1))
        for _ in range(rng.integers(5, 20)):
            r = rng.uniform(1.5, 4.5)
            p = _ellipsoid(r, r, 0.0)
            h = p.shape[0] // 2
            cy, cx = rng.integers(h, 2 * half + 1 - h, size=2)
            view = dt[cy - h : cy + h + 1, cx - h : cx + h + 1]
            np.minimum(view, p, out=view)
    elif kind == "wormhole":
        a = rng.uniform(10.0, 45.0)
        dt = _ellipsoid(a, rng.uniform(1.5, 4.0), rng.normal(0.0, 0.25))
    elif kind == "slag":
        dt = _slag(rng, rng.uniform(8.0, 40.0))
    elif kind == "crack":
        dt, anchor = _path_defect(
            rng, rng.uniform(30, 180), rng.uniform(1.0, 2.0), rng.uniform(0.15, 0.6),
            heading=rng.uniform(0, 2 * np.pi), wander=0.15,
        )
        return dt, anchor
    elif kind in ("lack_of_fusion", "incomplete_penetration"):
        width = rng.uniform(2.0, 4.0) if kind == "lack_of_fusion" else rng.uniform(3.0, 6.0)
        dt, anchor = _path_defect(
            rng, rng.uniform(80, 400), width, rng.uniform(0.1, 0.45),
            heading=rng.normal(0.0, 0.03) + rng.choice([0.0, np.pi]), wander=0.01,
        )
        return dt, anchor
    else:
        raise ValueError(f"kind: unknown defect type {kind!r}; expected one of {list(DEFECT_FREQUENCY)}")
    return dt, (dt.shape[0] // 2, dt.shape[1] // 2)


#: Where the digitiser puts the noise-free film's 0.1th and 99.9th gray-level percentiles
#: at most: a film that would leave this window is moved (or, if wider, scaled) into it,
#: so that no simulated film is clipped at 0 or 1 (GDXray's films are not).
WINDOW = (0.02, 0.98)
#: Bumped whenever the simulator's output for a seed changes; part of a simulated
#: dataset's key, so that cached simulated datasets are rebuilt.
SIMULATOR_VERSION = 2


def _digitiser_window(image, window=WINDOW):
    """Move or narrow a noise-free film's gray levels into ``window``.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The noise-free film on the gray scale.
    window : (float, float)

    Returns
    -------
    ndarray, shape (H, W)
        ``image`` itself if its 0.1-99.9th percentiles lie in ``window``; else shifted by
        the least amount that puts them there, or mapped linearly onto ``window`` when
        they span more than it.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.simulate import _digitiser_window
    >>> film = _digitiser_window(np.linspace(0.5, 1.2, 1001))  # too bright: moved down
    >>> round(float(np.percentile(film, 99.9)), 6), round(float(film.min()), 4)
    (0.98, 0.2807)
    """
    lo, hi = np.percentile(image, [0.1, 99.9])
    if lo >= window[0] and hi <= window[1]:
        return image
    if hi - lo > window[1] - window[0]:
        return window[0] + (image - lo) * (window[1] - window[0]) / (hi - lo)
    return image + (window[0] - lo if lo < window[0] else window[1] - hi)


def simulate_radiograph(rng, height=600, width=2400, defects_per_kpx=4.0, name="sim", layers=None, drawn=None):
    """Simulate one digitised film radiograph of a horizontal butt weld.

    Parameters
    ----------
    rng : numpy.random.Generator or int
        Source of randomness (an int is used as a seed).
    height, width : int
        Image size in pixels (GDXray welds are 366-1091 x 3512-4992).
    defects_per_kpx : float
        Mean number of defects per 1000 px of weld length (Poisson).
    name : str
        Name of the radiograph.
    layers : dict, optional
        If given, filled with the intermediate maps (each (H, W) float64):
        ``thickness_mm``, ``log10_exposure`` (after the PSF), ``density`` and
        ``noise_free`` (the image before grain and quantisation).
    drawn : dict, optional
        If given, filled with the film's randomly drawn parameters (floats unless said):
        ``plate_mm``, ``cap_mm`` (bead height), ``crown_exponent`` (the bead profile
        ``(1 - u**2)**e``: below 1 the bead meets the plate steeply), ``undercut_mm`` (depth
        of the groove at each toe), ``defects`` (int), ``psf`` ("gaussian" or "lorentzian")
        and ``psf_width`` (px), ``gradient`` (film gradient), ``plate_level`` and
        ``crest_level`` (gray levels), ``grain_blur`` (px) and ``grain_sigma0``.

    Returns
    -------
    Radiograph
        ``image`` float32 (H, W) in [0, 1] on the 8-bit grid, ``mask`` bool (H, W),
        ``labels`` int16 (H, W) with the codes of :data:`DEFECT_TYPES`.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.simulate import simulate_radiograph
    >>> rad = simulate_radiograph(np.random.default_rng(0), height=400, width=800)
    >>> rad.image.shape, rad.image.dtype, bool(rad.mask.any())
    ((400, 800), dtype('float32'), True)
    """
    rng = np.random.default_rng(rng)
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ValueError(f"height, width: {height}x{width} px is too small; each side must be >= {MIN_SIDE}")
    if not defects_per_kpx >= 0:
        raise ValueError(f"defects_per_kpx: expected a non-negative number, got {defects_per_kpx!r}")
    x = np.arange(width, dtype=np.float64)
    y = np.arange(height, dtype=np.float64)[:, None]

    def smooth_walk(scale, corr):
        # A slow wander along the weld, std `scale` and mean 0 on this film: on a film a few
        # correlation lengths long or shorter the slice is nearly constant, and normalising
        # it without removing its mean would offset the whole film by many times `scale`.
        w = ndi.gaussian_filter1d(rng.normal(size=width + 4 * int(corr)), corr, mode="wrap")
        w = w[2 * int(corr) : 2 * int(corr) + width]
        w = w - w.mean()
        return scale * w / (w.std() + 1e-12)

    # 1. Thickness: plate + cap that meanders, changes width, ripples; undercut at toes.
    plate = rng.uniform(8.0, 16.0)
    cap = rng.uniform(1.8, 3.2)
    centre = height * rng.uniform(0.42, 0.58) + smooth_walk(0.02 * height, 600.0)
    half_width = height * rng.uniform(0.22, 0.3) * (1.0 + smooth_walk(0.05, 500.0))
    u = (y - centre) / half_width
    exponent = rng.uniform(0.8, 1.4)
    crown = np.clip(1.0 - u**2, 0.0, None) ** exponent
    ripple_len = rng.uniform(25.0, 60.0)
    ripples = np.cos(2 * np.pi * (x + 0.5 * ripple_len * u**2) / ripple_len + rng.uniform(0, 2 * np.pi))
    roughness = ndi.gaussian_filter(rng.normal(size=(height, width)), 12.0)
    roughness /= roughness.std()
    thickness = plate + cap * crown * (1.0 + 0.01 * ripples + 0.02 * roughness)
    undercut = rng.uniform(0.0, 0.25)
    thickness -= undercut * np.exp(-(((np.abs(u) - 1.0) * half_width) ** 2) / (2 * 6.0**2))

    # 2. Defects, each with its exact mask and type.
    labels = np.zeros((height, width), np.int16)
    dt_total = np.zeros((height, width))
    kinds = list(DEFECT_FREQUENCY)
    probs = np.array([DEFECT_FREQUENCY[k] for k in kinds])
    n_defects = rng.poisson(defects_per_kpx * width / 1000.0)
    for kind in rng.choice(kinds, size=n_defects, p=probs / probs.sum()):
        dt, (ay, ax) = _defect_thickness(str(kind), rng)
        cx = int(rng.integers(0, width))
        c = centre[cx]
        hw = half_width[cx]
        if kind == "lack_of_fusion":
            cy = c + rng.choice([-1.0, 1.0]) * 0.8 * hw
        elif kind == "incomplete_penetration":
            cy = c + rng.normal(0.0, 0.05 * hw)
        else:
            cy = c + rng.uniform(-0.85, 0.85) * hw
        top, left = int(round(cy)) - ay, cx - ax
        # Clip the local window to the image.
        t0, l0 = max(top, 0), max(left, 0)
        b0, r0 = min(top + dt.shape[0], height), min(left + dt.shape[1], width)
        if b0 <= t0 or r0 <= l0:
            continue
        local = dt[t0 - top : b0 - top, l0 - left : r0 - left]
        region = dt_total[t0:b0, l0:r0]
        sel = np.abs(local) > np.abs(region)
        region[sel] = local[sel]
        labels[t0:b0, l0:r0][sel & (np.abs(local) > MASK_THRESHOLD_MM)] = (
            kinds.index(str(kind)) + 1
        )
    thickness = thickness + dt_total

    # 3. Beer-Lambert with an exposure gradient along the weld.
    log10_exposure = -MU_STEEL * thickness / np.log(10.0)
    log10_exposure = log10_exposure + smooth_walk(rng.uniform(0.0, 0.006), 800.0)[None, :]
    log10_exposure = log10_exposure + rng.uniform(-0.012, 0.012) * (x / width)[None, :]

    # 4. Unsharpness (film + scanner) as a Gaussian or Lorentzian PSF.
    if rng.random() < 0.5:
        psf, psf_width = "gaussian", rng.uniform(0.8, 1.6)
        log10_exposure = ndi.gaussian_filter(log10_exposure, psf_width)
    else:
        psf, psf_width = "lorentzian", rng.uniform(0.6, 1.2)
        log10_exposure = ndi.convolve(log10_exposure, lorentzian_psf(psf_width, radius=7))

    # 5. Film density (linear H&D region) and the digitiser's density window: chosen so
    #    that plate and bead crest land at GDXray-like gray levels.
    gradient = rng.uniform(4.0, 6.0)
    density = 2.5 + gradient * (log10_exposure - np.median(log10_exposure))
    plate_level = rng.uniform(0.08, 0.3)
    crest_level = rng.uniform(0.55, 0.9)
    d_plate = 2.5 + gradient * (-MU_STEEL * plate / np.log(10.0) - np.median(log10_exposure))
    d_crest = d_plate - gradient * MU_STEEL * cap / np.log(10.0)
    scale = (crest_level - plate_level) / (d_plate - d_crest)
    image = _digitiser_window(plate_level + (d_plate - density) * scale)

    # 6. Film grain: correlated, std ~ sqrt(density); then 8-bit quantisation.
    white = rng.normal(size=(height, width))
    grain_blur = rng.uniform(0.75, 1.05)
    grain = ndi.gaussian_filter(white, grain_blur)
    grain /= grain.std()
    sigma0 = rng.uniform(0.0036, 0.0054)
    sigma = sigma0 * np.sqrt(np.clip(density, 0.3, None) / 2.5)
    if layers is not None:
        layers.update(thickness_mm=thickness, log10_exposure=log10_exposure,
                      density=density, noise_free=image.copy())
    if drawn is not None:
        drawn.update(plate_mm=float(plate), cap_mm=float(cap), crown_exponent=float(exponent),
                     undercut_mm=float(undercut), defects=int(n_defects), psf=psf, psf_width=float(psf_width),
                     gradient=float(gradient), plate_level=float(plate_level), crest_level=float(crest_level),
                     grain_blur=float(grain_blur), grain_sigma0=float(sigma0))
    image = image + sigma * grain
    image = np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0
    return Radiograph(
        name=name, image=image.astype(np.float32), mask=labels > 0, labels=labels
    )


def simulate_radiographs(n, seed, height=600, width=2400, defects_per_kpx=4.0, indices=None, drawn=None,
                         layers=None):
    """Simulate ``n`` independent radiographs from one seed.

    Parameters
    ----------
    n : int
        Number of radiographs.
    seed : int
        Master seed; radiograph ``i`` uses the ``i``-th child of ``SeedSequence(seed)``,
        so adding radiographs does not change the earlier ones.
    height, width, defects_per_kpx
        See :func:`simulate_radiograph`.
    indices : iterable of int, optional
        Simulate only these of the ``n`` (each as it is among all ``n``).
    drawn : list, optional
        If given, one dict per radiograph is appended to it: its drawn parameters
        (:func:`simulate_radiograph`'s ``drawn``).
    layers : list, optional
        If given, one dict per radiograph is appended to it: its intermediate maps
        (:func:`simulate_radiograph`'s ``layers``, e.g. ``noise_free``; four (H, W) float64
        maps a film, so ask for few films at a time).

    Returns
    -------
    list of Radiograph
        Named ``sim_0001`` ... ``sim_NNNN`` (radiograph ``i`` is ``sim_{i + 1}``).

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.simulate import simulate_radiographs
    >>> films = simulate_radiographs(3, seed=5, height=300, width=300)
    >>> (last,) = simulate_radiographs(3, seed=5, height=300, width=300, indices=[2])
    >>> last.name, bool(np.array_equal(last.image, films[2].image))
    ('sim_0003', True)
    """
    if int(n) < 1:
        raise ValueError(f"n: expected at least 1 radiograph, got {n!r}")
    children = np.random.SeedSequence(int(seed)).spawn(int(n))
    indices = range(int(n)) if indices is None else [int(i) for i in indices]
    if any(not 0 <= i < int(n) for i in indices):
        raise ValueError(f"indices: expected radiographs among 0..{int(n) - 1}, got {list(indices)}")
    films = []
    for i in indices:
        params, maps = {}, ({} if layers is not None else None)
        films.append(simulate_radiograph(np.random.default_rng(children[i]), height, width, defects_per_kpx,
                                         name=f"sim_{i + 1:04d}", drawn=params, layers=maps))
        if drawn is not None:
            drawn.append(params)
        if layers is not None:
            layers.append(maps)
    return films


#: Another scanner for the same films (:func:`another_digitisation`): the added read noise's
#: standard deviation and its correlation length (px), and the bit depth it writes.
OTHER_SCANNER = {"noise": 0.009, "noise_blur": 0.6, "bits": 16}


def another_digitisation(radiograph, rng, noise=OTHER_SCANNER["noise"], noise_blur=OTHER_SCANNER["noise_blur"],
                         bits=OTHER_SCANNER["bits"]):
    """The same film read by another scanner: more, finer noise, and another bit depth.

    A lab's own films differ from the ones a detector was trained on less in the weld
    than in how they were digitised. This adds the read noise of a noisier scanner (nearly
    white: Gaussian noise blurred by ``noise_blur`` px) and quantises to ``bits`` bits. On
    the simulator's films (measured on three, :func:`weldlab.screening.film_statistics`) it
    raises the grain's standard deviation from 0.005-0.006 to 0.010 and lowers its lag-1
    correlation from 0.66-0.75 to 0.48-0.50: near films of GDXray's round-robin test
    digitised with other scanner settings (0.010-0.013 and 0.37-0.48).

    Parameters
    ----------
    radiograph : Radiograph
    rng : numpy.random.Generator or int
    noise : float
        Standard deviation of the added noise (intensity units).
    noise_blur : float
        Its Gaussian correlation length (px).
    bits : {8, 16}

    Returns
    -------
    Radiograph
        The same name, mask and labels.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.calibration import noise_stats
    >>> from weldlab.simulate import another_digitisation, simulate_radiograph
    >>> film = simulate_radiograph(np.random.default_rng(0), height=400, width=800)
    >>> other = another_digitisation(film, np.random.default_rng(1))
    >>> bool(noise_stats(other.image)["noise_std"] > 1.8 * noise_stats(film.image)["noise_std"])
    True
    """
    rng = np.random.default_rng(rng)
    read = ndi.gaussian_filter(rng.normal(size=radiograph.image.shape), noise_blur)
    read *= noise / read.std()
    levels = 2**int(bits) - 1
    image = np.round(np.clip(radiograph.image + read, 0.0, 1.0) * levels) / levels
    return Radiograph(name=radiograph.name, image=image.astype(np.float32), mask=radiograph.mask,
                      labels=radiograph.labels)
