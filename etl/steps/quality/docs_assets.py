"""The scripts, styles and fonts Data Docs pages load, shipped with the site instead of from CDNs.

GX 1.24's page templates load bootstrap, jQuery, bootstrap-table, Font Awesome, vega and others
from public CDNs. Offline, or behind a firewall, pages then render unstyled, the validation page's
Status column stays empty and its "Failed Only" filter does nothing; and scripts from a CDN without
an integrity pin are a supply-chain risk on a page that shows data.

``etl/docs_assets.lock.json`` (committed, shipped in the wheel) pins each npm package: its version,
its registry tarball with npm's ``dist.integrity`` (sha512), the files taken from it with their
sha256, and the CDN URLs of GX's templates each file replaces. :func:`fetch_assets` downloads the
tarballs from the npm registry once, at install time (``make env`` runs
``tweetpipe docs assets fetch``), checks both hashes and keeps the files in a cache directory
(:func:`assets_dir`). A docs build copies them into the site under ``static/vendor/`` and
:func:`rewrite_links` points every page at those copies by relative paths, so pages open from disk
and from S3 alike, and never reach the network when viewed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from etl.errors import PipelineError

LOCK_FILE = Path(__file__).resolve().parents[2] / "docs_assets.lock.json"
"""The pinned assets (inside the package, so a wheel carries it)."""
ASSETS_ENV = "TWEETPIPE_DOCS_ASSETS"
"""Where fetched assets are kept; default ``$XDG_CACHE_HOME/tweetpipe/docs-assets``."""
VENDOR_DIR = "static/vendor"
"""Where the assets go in the site."""
_MAX_TARBALL = 32 * 1024 * 1024
_TIMEOUT = 60.0
_NPM_TARBALL = re.compile(r"https://registry\.npmjs\.org/[A-Za-z0-9@/._-]+\.tgz")
_SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
# GX's long logo, from its web-assets bucket with a cache-busting query; the site has a copy.
_GX_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/logo-long\.png[^\"']*"
)

# GX's favicon link, relative: on a validation page it climbs one folder too few (GX's favicon
# template counts three levels where its navbar counts four), so it names no file of the site.
_GX_FAVICON = re.compile(r'href="(?:\./|(?:\.\./)*)static/images/favicon\.ico"')


class DocsAssetsError(PipelineError):
    """The page assets are missing, or a download does not match the lock file."""


@dataclass(frozen=True)
class Asset:
    """One file a Data Docs page loads.

    Attributes:
        package: the npm package (``bootstrap``, ``@fortawesome/fontawesome-free``).
        version: its pinned version.
        path: the file's path inside the package (``dist/css/bootstrap.min.css``).
        sha256: the file's SHA-256, hex.
    """

    package: str
    version: str
    path: str
    sha256: str

    @property
    def site_path(self) -> str:
        """Where the file is in the site (and in the cache): ``static/vendor/<pkg>@<ver>/<path>``."""
        return f"{VENDOR_DIR}/{self.package}@{self.version}/{self.path}"

    @property
    def integrity(self) -> str:
        """The Subresource Integrity value (``sha256-…``) of the file."""
        return "sha256-" + base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")


@dataclass(frozen=True)
class AssetLock:
    """The parsed lock file.

    Attributes:
        packages: per package: name, version, tarball, integrity, files (path -> sha256).
        replaces: CDN URL -> the asset that stands in for it.
    """

    packages: tuple[dict[str, object], ...]
    replaces: dict[str, Asset]

    @property
    def assets(self) -> list[Asset]:
        """Every file of every package."""
        out = []
        for pkg in self.packages:
            files = pkg["files"]
            assert isinstance(files, dict)
            out += [
                Asset(str(pkg["name"]), str(pkg["version"]), str(p), str(h))
                for p, h in sorted(files.items())
            ]
        return out


def load_lock(path: Path = LOCK_FILE) -> AssetLock:
    """Read and check the lock file.

    Args:
        path: the lock file.

    Returns:
        The lock.

    Raises:
        DocsAssetsError: the file is unreadable or an entry is malformed (named).
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        packages = tuple(doc["packages"])
        replaces: dict[str, Asset] = {}
        for pkg in packages:
            name, version = str(pkg["name"]), str(pkg["version"])
            files = {str(p): str(h) for p, h in pkg["files"].items()}
            if not _NPM_TARBALL.fullmatch(str(pkg["tarball"])):
                raise ValueError(f"{name}: tarball is not an npm registry URL")
            if not str(pkg["integrity"]).startswith("sha512-"):
                raise ValueError(f"{name}: integrity is not sha512")
            for file, digest in files.items():
                if not _SAFE_FILE.fullmatch(file) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                    raise ValueError(f"{name}: bad file entry {file!r}")
            for url, file in pkg["replaces"].items():
                replaces[str(url)] = Asset(name, version, str(file), files[str(file)])
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
        raise DocsAssetsError(f"{path}: not a usable docs assets lock file ({exc})") from exc
    return AssetLock(packages, replaces)


def assets_dir() -> Path:
    """Where the fetched assets are kept: ``$TWEETPIPE_DOCS_ASSETS``, else the user's cache.

    Returns:
        The directory (it may not exist yet).
    """
    configured = os.environ.get(ASSETS_ENV, "").strip()
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "tweetpipe" / "docs-assets"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def missing_assets(root: Path | None = None, lock: AssetLock | None = None) -> list[Asset]:
    """The assets that are absent from ``root`` or differ from their pinned hash.

    Args:
        root: the assets directory (default :func:`assets_dir`).
        lock: the lock (default :func:`load_lock`).

    Returns:
        The assets to fetch; empty when everything is in place.
    """
    root = root or assets_dir()
    lock = lock or load_lock()
    return [a for a in lock.assets if _sha256(root / a.site_path) != a.sha256]


def _download(url: str) -> bytes:
    if not _NPM_TARBALL.fullmatch(url):
        raise DocsAssetsError(f"refusing to download {url}: not an npm registry tarball")
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:  # noqa: S310 - https only
            body: bytes = response.read(_MAX_TARBALL + 1)
    except OSError as exc:
        raise DocsAssetsError(f"cannot download {url}: {exc}") from exc
    if len(body) > _MAX_TARBALL:
        raise DocsAssetsError(f"{url}: more than {_MAX_TARBALL} bytes")
    return body


def _write(target: Path, data: bytes) -> None:
    part = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data)
        part.replace(target)
    except OSError as exc:
        raise DocsAssetsError(f"cannot write {target}: {exc.strerror or exc}") from exc


def _unpack(pkg: dict[str, object], tarball: bytes, root: Path) -> list[Path]:
    name, version = str(pkg["name"]), str(pkg["version"])
    expected = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode("ascii")
    if expected != pkg["integrity"]:
        raise DocsAssetsError(f"{name}@{version}: the tarball's sha512 differs from the lock file")
    files = pkg["files"]
    assert isinstance(files, dict)
    written = []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        # npm tarballs hold one top folder (usually ``package/``); files are named below it.
        members = {
            m.name.split("/", 1)[1]: m for m in archive.getmembers() if m.isfile() and "/" in m.name
        }
        for file, digest in sorted(files.items()):
            member = members.get(str(file))
            handle = archive.extractfile(member) if member is not None else None
            if handle is None:
                raise DocsAssetsError(f"{name}@{version}: the tarball has no {file}")
            data = handle.read()
            if hashlib.sha256(data).hexdigest() != digest:
                raise DocsAssetsError(f"{name}@{version}: {file} differs from its pinned sha256")
            target = root / Asset(name, version, str(file), str(digest)).site_path
            _write(target, data)
            written.append(target)
    return written


def fetch_assets(root: Path | None = None, lock: AssetLock | None = None) -> list[Path]:
    """Download the pinned packages that are not in ``root`` yet, check them, keep their files.

    Each tarball's sha512 must equal the lock's ``integrity`` and each file's sha256 its pin;
    nothing unchecked is written (a file is written aside and renamed into place).

    Args:
        root: the assets directory (default :func:`assets_dir`).
        lock: the lock (default :func:`load_lock`).

    Returns:
        The files written (empty when everything was already there).

    Raises:
        DocsAssetsError: a download fails or does not match the lock.
    """
    root = root or assets_dir()
    lock = lock or load_lock()
    wanted = {(a.package, a.version) for a in missing_assets(root, lock)}
    written: list[Path] = []
    for pkg in lock.packages:
        if (str(pkg["name"]), str(pkg["version"])) in wanted:
            written += _unpack(pkg, _download(str(pkg["tarball"])), root)
    return written


def require_assets(root: Path | None = None, lock: AssetLock | None = None) -> Path:
    """The assets directory, checked complete.

    Args:
        root: the assets directory (default :func:`assets_dir`).
        lock: the lock (default :func:`load_lock`).

    Returns:
        ``root``.

    Raises:
        DocsAssetsError: an asset is missing or altered; the message names it and the command
            that fetches them.
    """
    root = root or assets_dir()
    missing = missing_assets(root, lock)
    if missing:
        raise DocsAssetsError(
            f"the Data Docs page assets are not in {root} ({len(missing)} missing or altered, e.g. "
            f"{missing[0].site_path}): run `tweetpipe docs assets fetch` (make env does) or set "
            f"{ASSETS_ENV} to a directory holding them"
        )
    return root


def rewrite_links(page: str, to_root: str, lock: AssetLock) -> str:
    """Point a GX page's CDN links at the site's copies.

    No ``integrity`` attribute: Chromium refuses Subresource Integrity on ``file://`` resources
    (they are not CORS-enabled), which would leave a page opened from disk unstyled. The bytes are
    pinned where they enter instead: the tarball's sha512 and each file's sha256 when fetched, and
    again (:func:`require_assets`) before every build copies them into the site.

    Args:
        page: the page's HTML.
        to_root: the relative path from the page to the site's root (``../../../../``, or ``""``).
        lock: the lock.

    Returns:
        The page, with no link left to a CDN named in the lock (or to GX's logo bucket), and
        GX's favicon link pointing at the site's copy.
    """

    def local(match: re.Match[str]) -> str:
        attr, url = match.group(1), match.group(2)
        asset = lock.replaces.get(url)
        if asset is None:
            return match.group(0)
        return f'{attr}="{to_root}{asset.site_path}"'

    urls = "|".join(re.escape(u) for u in sorted(lock.replaces, key=len, reverse=True))
    # GX pins two of its CDN scripts with integrity and crossorigin; a file:// page cannot make
    # the CORS request those ask for, so they go with the CDN URL.
    extra = r'(?:\s+integrity="[^"]*")?(?:\s+crossorigin="[^"]*")?'
    page = re.sub(rf'\b(src|href)="({urls})"{extra}', local, page)
    page = _GX_FAVICON.sub(f'href="{to_root}static/images/favicon.ico"', page)
    return _GX_LOGO.sub(f"{to_root}static/images/logo-long.png", page)
