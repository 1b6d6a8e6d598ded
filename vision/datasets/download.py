"""Downloader for MNIST, Fashion-MNIST and CIFAR-10: mirrors, SHA-256 checks, a cache, atomic writes.

Each file is fetched into a temp file next to its destination while its
SHA-256 is computed; only a file whose hash matches the table is renamed into
place (:func:`core.serialization.atomic_path`), so the cache never holds a
partial or corrupted download. A failing mirror (HTTP error, refused
connection, wrong hash, oversize body) is recorded and the next one tried;
when all fail, :class:`DownloadError` lists every URL with its reason and
says where to put the file by hand. Only ``urllib.request`` is used.

Cache folder: the ``cache_dir`` argument, else ``$ZERODL_DATA``, else
``~/.cache/zerodl/datasets``; each dataset gets a sub-folder named after it.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from core.serialization import atomic_path

__all__ = ["RemoteFile", "REMOTE_FILES", "DownloadError", "default_cache_dir", "dataset_cache_dir",
           "sha256_file", "download_file", "download_dataset"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "zerodl-dataset-downloader/0.1 (+urllib)"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name in the cache, SHA-256, size in bytes and mirror URLs (tried in order)."""

    filename: str
    sha256: str
    size: int | None
    urls: tuple


def _mirrored(filename: str, sha256: str, size: int, bases: Sequence[str]) -> RemoteFile:
    return RemoteFile(filename, sha256, size, tuple(base + filename for base in bases))


_MNIST_BASES = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/")
_FASHION_BASES = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                  "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                  "https://storage.googleapis.com/tensorflow/tf-keras-datasets/")
_CIFAR10_BASES = ("https://www.cs.toronto.edu/~kriz/",
                  "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                  "http://www.cs.toronto.edu/~kriz/")

#: Files of each downloadable dataset (checksums of the files as published).
REMOTE_FILES = {
    "mnist": (
        _mirrored("train-images-idx3-ubyte.gz",
                  "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422, _MNIST_BASES),
        _mirrored("train-labels-idx1-ubyte.gz",
                  "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881, _MNIST_BASES),
        _mirrored("t10k-images-idx3-ubyte.gz",
                  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877, _MNIST_BASES),
        _mirrored("t10k-labels-idx1-ubyte.gz",
                  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542, _MNIST_BASES),
    ),
    "fashion-mnist": (
        _mirrored("train-images-idx3-ubyte.gz",
                  "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880, _FASHION_BASES),
        _mirrored("train-labels-idx1-ubyte.gz",
                  "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515, _FASHION_BASES),
        _mirrored("t10k-images-idx3-ubyte.gz",
                  "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102, _FASHION_BASES),
        _mirrored("t10k-labels-idx1-ubyte.gz",
                  "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148, _FASHION_BASES),
    ),
    "cifar10": (
        _mirrored("cifar-10-python.tar.gz",
                  "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170498071, _CIFAR10_BASES),
    ),
}


class DownloadError(OSError):
    """No mirror delivered a file with the right checksum.

    Attributes: ``filename``, ``destination`` (Path) and ``attempts``, a
    list of ``(url, reason)``.
    """

    def __init__(self, message: str, filename: str, destination: Path, attempts: list):
        super().__init__(message)
        self.filename, self.destination, self.attempts = filename, destination, attempts

    def __str__(self) -> str:  # OSError's default would prefix an errno tuple
        return self.args[0]


def default_cache_dir() -> Path:
    """``$ZERODL_DATA`` when set, else ``~/.cache/zerodl/datasets``."""
    env = os.environ.get("ZERODL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zerodl" / "datasets"


def dataset_cache_dir(name: str, cache_dir=None) -> Path:
    """The folder dataset ``name``'s files are cached in: ``<cache_dir or default_cache_dir()>/<name>``."""
    return (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / name


def sha256_file(path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _Rejected(Exception):
    """A mirror answered, but with the wrong bytes; the message says how."""


def _fetch(url: str, remote: RemoteFile, tmp: Path, timeout: float, progress) -> None:
    """Stream ``url`` into ``tmp``, hashing as it goes; raise _Rejected on a size or hash mismatch."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest, done = hashlib.sha256(), 0
    limit = remote.size if remote.size is not None else None
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        header = response.headers.get("Content-Length")
        total = int(header) if header and header.isdigit() else remote.size
        if limit is not None and header and header.isdigit() and int(header) != limit:
            raise _Rejected(f"server announces {header} bytes, expected {limit}")
        while True:
            block = response.read(_CHUNK)
            if not block:
                break
            done += len(block)
            if limit is not None and done > limit:  # never let a bad mirror fill the disk
                raise _Rejected(f"body is longer than the expected {limit} bytes")
            digest.update(block)
            out.write(block)
            if progress is not None:
                progress(remote.filename, done, total)
    actual = digest.hexdigest()
    if actual != remote.sha256:
        raise _Rejected(f"corrupted download of {remote.filename}: expected sha256 {remote.sha256}, "
                        f"got {actual} ({done} bytes)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, _Rejected) else str(exc)


def download_file(remote: RemoteFile, folder, mirrors: Sequence[str] = (), timeout: float = 60.0,
                  progress: Callable | None = None, force: bool = False) -> Path:
    """Make ``folder / remote.filename`` a verified copy of ``remote``; return its path.

    An existing file with the right SHA-256 is kept (``force=True`` fetches
    anyway). Otherwise the URLs are tried in order: ``mirrors`` (base URLs,
    e.g. a local mirror, with the file name appended) first, then
    ``remote.urls``. ``progress(filename, bytes_done, bytes_total_or_None)``
    is called as data arrives.

    Raises:
        DownloadError: every URL failed; the message lists each URL and why,
            and how to place the file by hand.
    """
    folder = Path(folder)
    dest = folder / remote.filename
    note = ""
    if dest.is_file() and not force:
        actual = sha256_file(dest)
        if actual == remote.sha256:
            return dest
        note = f"\nThe existing {dest} has sha256 {actual}, not {remote.sha256}; it was left as it is."
        logger.warning("%s: sha256 %s does not match the expected %s; downloading it again",
                       dest, actual, remote.sha256)
    folder.mkdir(parents=True, exist_ok=True)  # a permission problem here is not a mirror's fault
    urls = [m if m.endswith(remote.filename) else m.rstrip("/") + "/" + remote.filename for m in mirrors]
    urls += [u for u in remote.urls if u not in urls]
    attempts = []
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            attempts.append((url, "not an http(s) URL"))
            continue
        logger.info("downloading %s from %s", remote.filename, url)
        try:
            with atomic_path(dest) as tmp:
                _fetch(url, remote, tmp, timeout, progress)
            return dest
        except (_Rejected, urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
            attempts.append((url, _reason(exc)))
            logger.warning("%s: %s", url, attempts[-1][1])
    tried = "\n".join(f"  - {url}: {why}" for url, why in attempts) or "  (no URLs)"
    raise DownloadError(
        f"could not download {remote.filename} (sha256 {remote.sha256}) into {folder}; tried:\n{tried}\n"
        f"If this machine is offline, fetch the file from one of those URLs elsewhere and copy it to "
        f"{dest} (its sha256 must be {remote.sha256}).{note}",
        remote.filename, dest, attempts)


def download_dataset(name: str, cache_dir=None, mirrors: Sequence[str] = (), timeout: float = 60.0,
                     progress: Callable | None = None) -> Path:
    """Download every file of dataset ``name`` (see ``REMOTE_FILES``) into its cache folder; return the folder.

    Files already there with the right checksum are not fetched again.
    """
    if name not in REMOTE_FILES:
        raise ValueError(f"download_dataset: can download {sorted(REMOTE_FILES)}, got {name!r}")
    folder = dataset_cache_dir(name, cache_dir)
    for remote in REMOTE_FILES[name]:
        download_file(remote, folder, mirrors=mirrors, timeout=timeout, progress=progress)
    return folder
