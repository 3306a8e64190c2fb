"""JavaScript the book's widgets need offline, fetched from the npm registry, pinned and checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import BookBuildError

#: JavaScript the rendered widgets need, from the npm registry: package -> (version, the
#: tarball's sha512 as npm publishes it, files to serve from ``_static/widgets``). The
#: HTML manager's major version matches ipywidgets 8 (``ipywidgets._version.__html_manager_version__``).
WIDGET_JS = {
    "requirejs": ("2.3.7", "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
                  ("require.js",)),
    "@jupyter-widgets/html-manager": (
        "1.0.15", "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        ("dist/embed-amd.js", "dist/*.woff", "dist/*.woff2", "dist/*.ttf", "dist/*.eot", "dist/*.svg")),
}


def _npm_tarball(package, version, integrity, cache):
    """The npm registry's tarball of ``package@version`` (cached), checked against ``integrity``."""
    import base64
    import hashlib

    name = f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    tarball = Path(cache) / name
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BookBuildError(f"npm not found: it fetches {package}@{version} for the book's widgets "
                                 "(install Node.js and npm, or build with offline_js=False)")
        Path(cache).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([npm, "pack", f"{package}@{version}", "--pack-destination", str(cache)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not tarball.is_file():
            raise BookBuildError(f"npm pack {package}@{version} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != integrity:
        tarball.unlink()
        raise BookBuildError(f"{tarball}: not the published {package}@{version} (sha512 differs); removed, "
                             "build again to fetch it anew")
    return tarball


def offline_assets(static, cache=None):
    """Put the widgets' JavaScript (:data:`WIDGET_JS`) into ``static/widgets``.

    Parameters
    ----------
    static : path
        The book's ``_static`` folder (staged).
    cache : path, optional
        Where the npm tarballs are kept (default: weldlab's folder in the user cache).

    Returns
    -------
    pathlib.Path
        The ``widgets`` folder.
    """
    import fnmatch
    import tarfile

    import pooch

    cache = Path(cache or pooch.os_cache("weldlab")) / "npm"
    out = Path(static) / "widgets"
    out.mkdir(parents=True, exist_ok=True)
    for package, (version, integrity, patterns) in WIDGET_JS.items():
        with tarfile.open(_npm_tarball(package, version, integrity, cache)) as tar:
            for member in tar.getmembers():
                inner = member.name.removeprefix("package/")
                if member.isfile() and any(fnmatch.fnmatch(inner, p) for p in patterns):
                    (out / Path(inner).name).write_bytes(tar.extractfile(member).read())
    return out
