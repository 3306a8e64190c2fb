"""Reading radiographs: single image files and the GDXray weld series.

Every function returns intensities as ``float32`` in ``[0, 1]`` and masks as ``bool``
arrays of the same ``(height, width)`` shape. Inputs are checked early and errors name
the offending file and what was expected, so that a bad file in a folder of many is easy
to find.

GDXray (Mery et al., *J. Nondestruct. Eval.* 34, 42, 2015) is free for education and
research; commercial use is prohibited. weldlab never ships its images: point
``--gdxray-root`` or the environment variable ``WELDLAB_GDXRAY`` at a folder that holds
``Welding/W0001`` (radiographs) and ``Welding/W0002`` (pixel masks).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .geometry import MIN_SIDE

#: Environment variable that points to a GDXray copy (the folder holding ``Welding/``).
GDXRAY_ENV = "WELDLAB_GDXRAY"

#: Series used by weldlab: ten weld radiographs and their manual pixel masks.
GDXRAY_IMAGES = "W0001"
GDXRAY_MASKS = "W0002"

#: Pixel size of the GDXray weld films, in millimetres (40.3 µm).
GDXRAY_PIXEL_MM = 0.0403


class RadiographError(ValueError):
    """An image or mask file that weldlab cannot use, with the reason."""


@dataclass(frozen=True)
class Radiograph:
    """One radiograph with its defect annotation.

    Attributes
    ----------
    name : str
        Identifier, e.g. ``"W0001_0003"`` or ``"sim_0002"``.
    image : ndarray, shape (H, W), float32
        Intensities in [0, 1].
    mask : ndarray, shape (H, W), bool
        True on defect pixels.
    labels : ndarray, shape (H, W), int16, optional
        Defect type code per pixel for simulated radiographs (0 = none), else None.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self):
        check_image_array(self.image, what=f"radiograph {self.name!r}")
        check_mask(self.mask, self.image.shape, what=f"mask of {self.name!r}")


def check_image_array(image, *, what="image", min_side=MIN_SIDE):
    """Validate an intensity array.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Intensities, expected finite and in [0, 1].
    what : str
        Name used in error messages.
    min_side : int
        Smallest accepted height and width.

    Raises
    ------
    RadiographError
        If the array is not 2-D, too small, not finite or outside [0, 1].
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise RadiographError(
            f"{what}: expected a 2-D grayscale array (H, W), got shape {image.shape}"
        )
    if min(image.shape) < min_side:
        raise RadiographError(
            f"{what}: image of {image.shape[0]}x{image.shape[1]} px is too small; "
            f"each side must be at least {min_side} px"
        )
    if not np.issubdtype(image.dtype, np.floating):
        raise RadiographError(f"{what}: expected float intensities, got dtype {image.dtype}")
    finite = np.isfinite(image)
    if not finite.all():
        raise RadiographError(
            f"{what}: contains {int((~finite).sum())} NaN or infinite pixels; "
            "expected finite intensities in [0, 1]"
        )
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        raise RadiographError(f"{what}: intensities span [{lo:.3g}, {hi:.3g}], expected [0, 1]")
    return image


def check_mask(mask, shape, *, what="mask"):
    """Validate a boolean defect mask against the image shape it belongs to.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
    shape : tuple of int
        Expected ``(H, W)``.
    what : str
        Name used in error messages.
    """
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise RadiographError(f"{what}: expected a boolean mask, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise RadiographError(
            f"{what}: mask shape {mask.shape} does not match image shape {tuple(shape)}"
        )
    return mask


def _read_raw(path: Path) -> np.ndarray:
    """Read an image file into a NumPy array without conversion."""
    import imageio.v3 as iio

    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; expected a PNG or TIFF radiograph file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected a PNG or TIFF radiograph")
    data = path.read_bytes()  # decoding from memory leaves no file handle open on failure
    if not data:
        raise RadiographError(f"{path}: is empty (0 bytes); expected a PNG or TIFF radiograph")
    try:
        return np.asarray(iio.imread(data, extension=path.suffix.lower() or None))
    except Exception as exc:  # imageio raises many types for unreadable files
        raise RadiographError(
            f"{path}: cannot be decoded as an image ({type(exc).__name__}: {exc}); "
            "expected a PNG or TIFF radiograph"
        ) from exc


def _to_float32(raw, scale, rows=1024):
    """``raw / scale`` as float32, computed in float64 a block of rows at a time.

    The same bits as ``(raw / scale).astype(np.float32)``, without a float64 copy of a
    whole (possibly very large) image.
    """
    out = np.empty(raw.shape, np.float32)
    for i in range(0, raw.shape[0], rows):
        out[i : i + rows] = raw[i : i + rows] / scale
    return out


def load_image(path, *, allow_16bit=True, allow_rgb=True, min_side=MIN_SIDE):
    """Load a grayscale radiograph as float32 in [0, 1].

    Parameters
    ----------
    path : str or Path
        PNG or TIFF file, 8- or 16-bit.
    allow_16bit : bool
        Accept 16-bit files (scaled by 1/65535). If False they raise.
    allow_rgb : bool
        Convert RGB(A) files to luminance with a warning. If False they raise.
    min_side : int
        Smallest accepted height and width in pixels.

    Returns
    -------
    ndarray, shape (H, W), float32
        Intensities in [0, 1].

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    RadiographError
        If the file is corrupt, of an unsupported depth or layout, or too small.
    """
    return _decode(Path(path), _read_raw(Path(path)), allow_16bit, allow_rgb, min_side)


def _decode(path, raw, allow_16bit=True, allow_rgb=True, min_side=MIN_SIDE):
    """:func:`load_image` on an array already read from ``path``."""
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):
        if not allow_rgb:
            raise RadiographError(
                f"{path}: is a colour image with {raw.shape[-1]} channels; expected grayscale"
            )
        warnings.warn(f"{path}: colour image converted to grayscale luminance", stacklevel=2)
        from skimage.color import rgb2gray

        scale = np.iinfo(raw.dtype).max if np.issubdtype(raw.dtype, np.integer) else 1.0
        image = rgb2gray(raw[..., :3].astype(np.float64) / scale)
    elif raw.ndim == 2:
        if raw.dtype == bool:
            image = _to_float32(raw, 1.0)
        elif raw.dtype == np.uint8:
            image = _to_float32(raw, 255.0)
        elif raw.dtype == np.uint16:
            if not allow_16bit:
                raise RadiographError(f"{path}: is a 16-bit image; expected 8-bit grayscale")
            image = _to_float32(raw, 65535.0)
        elif np.issubdtype(raw.dtype, np.floating):
            image = _to_float32(raw, 1.0)
        else:
            raise RadiographError(
                f"{path}: pixel type {raw.dtype} is not supported; expected 8- or 16-bit grayscale"
            )
    else:
        raise RadiographError(
            f"{path}: array of shape {raw.shape} is not a grayscale or RGB image"
        )
    image = np.asarray(image, dtype=np.float32)
    return check_image_array(image, what=str(path), min_side=min_side)


def load_mask(path, shape=None):
    """Load a binary defect mask (any nonzero pixel is a defect).

    Parameters
    ----------
    path : str or Path
        1-bit or 8-bit PNG.
    shape : tuple of int, optional
        Expected ``(H, W)``; a mismatch raises.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    path = Path(path)
    raw = _read_raw(path)
    if raw.ndim != 2:
        raise RadiographError(f"{path}: mask of shape {raw.shape} is not a 2-D binary image")
    mask = raw.astype(bool)
    if shape is not None:
        check_mask(mask, shape, what=str(path))
    return mask


def gdxray_root(root=None, cwd=None) -> Path:
    """Resolve the folder of a GDXray copy.

    Parameters
    ----------
    root : str or Path, optional
        Explicit folder. Else ``$WELDLAB_GDXRAY``, else ``../shared/data/gdxray`` relative
        to ``cwd`` or its parent (the repository root or its ``notebooks/``).
    cwd : str or Path, optional
        The folder the relative fallback starts from (default: the working directory).

    Returns
    -------
    Path
        A folder that contains ``Welding/W0001`` and ``Welding/W0002``.

    Raises
    ------
    FileNotFoundError
        With the places searched and how to get the data.
    """
    candidates = []
    if root:
        candidates.append(Path(root))
    elif os.environ.get(GDXRAY_ENV):
        candidates.append(Path(os.environ[GDXRAY_ENV]))
    else:
        here = Path(cwd or Path.cwd()).resolve()
        for base in (here, here.parent):  # the repository root, or its notebooks/
            candidates.append(base / ".." / "shared" / "data" / "gdxray")
    for cand in candidates:
        if (cand / "Welding" / GDXRAY_IMAGES).is_dir() and (
            cand / "Welding" / GDXRAY_MASKS
        ).is_dir():
            return cand.resolve()
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"GDXray weld series not found (looked for Welding/{GDXRAY_IMAGES} and "
        f"Welding/{GDXRAY_MASKS} under: {searched}). Obtain GDXray from its official "
        f"distribution (see README) and pass --gdxray-root DIR or set {GDXRAY_ENV}."
    )


def load_gdxray(root=None, names=None):
    """Load the GDXray weld radiographs W0001 with their masks W0002.

    Parameters
    ----------
    root : str or Path, optional
        GDXray folder (see :func:`gdxray_root`).
    names : sequence of str, optional
        Subset such as ``["W0001_0001"]``; default all ten.

    Returns
    -------
    list of Radiograph
        Images are 8-bit films scaled by 1/255; masks are the manual segmentations.
    """
    root = gdxray_root(root)
    img_dir = root / "Welding" / GDXRAY_IMAGES
    mask_dir = root / "Welding" / GDXRAY_MASKS
    files = sorted(img_dir.glob(f"{GDXRAY_IMAGES}_*.png"))
    # W0001_0000 is an exact duplicate of W0001_0001 in the original series.
    files = [f for f in files if not f.stem.endswith("_0000")]
    if names is not None:
        wanted = set(names)
        files = [f for f in files if f.stem in wanted]
        missing = wanted - {f.stem for f in files}
        if missing:
            raise FileNotFoundError(f"GDXray radiographs not found in {img_dir}: {sorted(missing)}")
    if not files:
        raise FileNotFoundError(f"no {GDXRAY_IMAGES}_*.png radiographs in {img_dir}")
    out = []
    for f in files:
        image = load_image(f, allow_16bit=False, allow_rgb=False)
        mask_file = mask_dir / f.name.replace(GDXRAY_IMAGES, GDXRAY_MASKS)
        mask = load_mask(mask_file, image.shape)
        out.append(Radiograph(name=f.stem, image=image, mask=mask))
    return out


#: The pixel types of a user's films and the bit depth each stands for.
BIT_DEPTHS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}


def film_number(name):
    """The number at the end of a film's name (GDXray's ``W0001_0003`` is film 3), or None.

    Examples
    --------
    >>> film_number("W0001_0003"), film_number("plate-12"), film_number("weld")
    (3, 12, None)
    """
    digits = len(name) - len(name.rstrip("0123456789"))
    return int(name[-digits:]) if digits else None


def read_boxes(path):
    """Defect bounding boxes in GDXray's ``ground_truth.txt`` format.

    One box per line: the film's number, then ``x1 x2 y1 y2`` (x along the columns, y along
    the rows, in GDXray's 1-based pixel coordinates, whose pixel k spans k - 0.5 to k + 0.5).
    Blank lines and lines starting with ``#`` are skipped.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of int -> list of tuple
        Film number -> boxes ``(row0, col0, row1, col1)``, 0-based, end exclusive: every
        pixel the box touches.

    Raises
    ------
    RadiographError
        Naming the file and line of a box that is not five numbers with ``x1 <= x2`` and
        ``y1 <= y2``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "ground_truth.txt"
    >>> _ = f.write_text("1.0 8.5 23.5 121.5 130.5")
    >>> read_boxes(f)
    {1: [(121, 8, 130, 23)]}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected a box file (GDXray's ground_truth.txt format)")
    out = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            film, x1, x2, y1, y2 = (float(v) for v in line.split())
        except ValueError:
            film = x1 = x2 = y1 = y2 = float("nan")
        if not (np.isfinite([film, x1, x2, y1, y2]).all() and film == int(film) and x1 <= x2 and y1 <= y2):
            raise RadiographError(f"{path}, line {number}: {line.strip()!r} is not a box; expected five numbers "
                                  "'film x1 x2 y1 y2' with x1 <= x2 and y1 <= y2 (GDXray's ground_truth.txt)")
        box = (int(np.floor(y1 - 0.5)), int(np.floor(x1 - 0.5)), int(np.ceil(y2 - 0.5)), int(np.ceil(x2 - 0.5)))
        out.setdefault(int(film), []).append(box)
    return out


def boxes_mask(boxes, shape):
    """A defect mask that is True inside every box (clipped to the image).

    Parameters
    ----------
    boxes : list of tuple
        ``(row0, col0, row1, col1)`` as :func:`read_boxes` returns them.
    shape : tuple of int
        ``(H, W)``.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    mask = np.zeros(shape, bool)
    for r0, c0, r1, c1 in boxes:
        mask[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)] = True
    return mask


def load_films(paths, masks=None, boxes=None, min_side=MIN_SIDE):
    """A user's family of films, with the defects they hold where known.

    Every file is read and checked before anything else happens, and a problem is one
    error naming the file and what was expected.

    Parameters
    ----------
    paths : sequence of path
        Grayscale PNG or TIFF films, all 8-bit or all 16-bit (scaled by 1/255 or 1/65535).
    masks : path, optional
        A folder of defect masks named as the films (any nonzero pixel is a defect). A
        film without a mask there holds no known defect.
    boxes : path, optional
        Defect boxes (:func:`read_boxes`), each naming its film by the number at the end
        of the film's name (:func:`film_number`). Not with ``masks``.
    min_side : int
        Smallest accepted side (px).

    Returns
    -------
    films : list of Radiograph
        Named by their file names without extension; masks all False where no defect is known.
    info : dict
        ``bit_depth`` (8 or 16), ``annotations`` ("masks", "boxes" or "none"),
        ``annotated`` (the names of the films with a mask or a box) and ``unused`` (the
        masks, or the film numbers of boxes, that belong to no film given: reported, so
        that a misspelt name is seen).

    Raises
    ------
    RadiographError
        Mixed bit depths, a film of another pixel type, two films of one name, a mask of
        another size, films that the boxes cannot name (no number at the end, or two alike).
    """
    if masks is not None and boxes is not None:
        raise ValueError("masks, boxes: give the defects as masks or as boxes, not both")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("films: expected at least one film")
    names = {}
    for p in paths:
        if p.stem in names:
            raise RadiographError(f"{p}: has the same name as {names[p.stem]}; expected films of distinct names")
        names[p.stem] = p
    films, depth, annotated, unused = [], None, [], []
    mask_files = {}
    if masks is not None:
        masks = Path(masks)
        if not masks.is_dir():
            raise NotADirectoryError(f"--masks {masks}: not a folder; expected a folder of masks named as the films")
        mask_files = {f.stem: f for f in sorted(masks.iterdir()) if f.is_file() and not f.name.startswith(".")}
        unused = sorted(set(mask_files) - set(names))
    box_table = read_boxes(boxes) if boxes is not None else {}
    if boxes is not None:
        numbers = {}
        for name, p in names.items():
            n = film_number(name)
            if n is None or n in numbers:
                why = "has no number at the end of its name" if n is None else f"has the same number as {numbers[n]}"
                raise RadiographError(f"{p}: {why}; the boxes of {boxes} name films by that number "
                                      "(GDXray: W0001_0003 is 3)")
            numbers[n] = p
        unused = [str(n) for n in sorted(set(box_table) - set(numbers))]
    for name, p in names.items():
        raw = _read_raw(p)
        if raw.dtype not in BIT_DEPTHS or raw.ndim != 2:
            raise RadiographError(f"{p}: pixels of type {raw.dtype} in shape {raw.shape}; expected an 8- or 16-bit "
                                  "grayscale film")
        bits = BIT_DEPTHS[raw.dtype]
        if depth is not None and bits != depth[0]:
            raise RadiographError(f"{p}: is {bits}-bit but {depth[1]} is {depth[0]}-bit; "
                                  "expected films of one bit depth (one digitisation)")
        depth = depth or (bits, p)
        image = _decode(p, raw, min_side=min_side)
        if name in mask_files:
            mask = load_mask(mask_files[name], image.shape)
            annotated.append(name)
        elif boxes is not None and film_number(name) in box_table:
            mask = boxes_mask(box_table[film_number(name)], image.shape)
            annotated.append(name)
        else:
            mask = np.zeros(image.shape, bool)
        films.append(Radiograph(name=name, image=image, mask=mask))
    kind = "masks" if masks is not None else "boxes" if boxes is not None else "none"
    return films, {"bit_depth": depth[0], "annotations": kind, "annotated": annotated, "unused": unused}


#: Official GDXray download location used by :func:`fetch_gdxray` (not reachable offline).
GDXRAY_URL = "https://domingomery.ing.puc.cl/material/gdxray/"


def fetch_gdxray(dest, base_url=GDXRAY_URL, progressbar=True):
    """Download the W0001 and W0002 weld series with pooch.

    The normal route is a local copy (``--gdxray-root``); this helper is for a machine
    with internet access. Files are fetched one by one from ``base_url`` (the GDXray
    distribution's ``Welding/`` tree) and cached in ``dest``. Check the GDXray terms
    first: educational and research use only.

    Parameters
    ----------
    dest : str or Path
        Folder that will hold ``Welding/W0001`` and ``Welding/W0002``.
    base_url : str
        Root URL of the distribution (it changes from time to time; see the README).
    progressbar : bool
        Show a progress bar per file.

    Returns
    -------
    Path
        ``dest``, ready for :func:`load_gdxray`.
    """
    import pooch

    dest = Path(dest)
    for series in (GDXRAY_IMAGES, GDXRAY_MASKS):
        for i in range(1, 11):
            fname = f"{series}_{i:04d}.png"
            pooch.retrieve(
                url=f"{base_url.rstrip('/')}/Welding/{series}/{fname}",
                known_hash=None,
                fname=fname,
                path=dest / "Welding" / series,
                progressbar=progressbar,
            )
    return dest
