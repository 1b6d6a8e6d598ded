"""The downloader against a local HTTP server on 127.0.0.1 (never the internet)."""
import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from vision.datasets import download as dl
from vision.datasets import get_dataset
from vision.datasets.download import (DownloadError, RemoteFile, dataset_cache_dir, default_cache_dir,
                                      download_dataset, download_file)

from .test_datasets import write_fake_idx


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / "www"`` on 127.0.0.1; yields ``(base_url, www_folder)``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def refused_url():
    """A URL on a local port nothing listens on, so connecting is refused at once (like being offline)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.bin"


def publish(www: Path, sub: str, name: str, data: bytes) -> None:
    (www / sub).mkdir(parents=True, exist_ok=True)
    (www / sub / name).write_bytes(data)


def payload(n=200_000, seed=0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def remote_for(data: bytes, urls, name="data.bin") -> RemoteFile:
    return RemoteFile(name, hashlib.sha256(data).hexdigest(), len(data), tuple(urls))


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_404_mirror_then_working_mirror(server, tmp_path):
    base, www = server
    data = payload()
    publish(www, "good", "data.bin", data)
    remote = remote_for(data, [f"{base}/missing/data.bin", f"{base}/good/data.bin"])
    seen = []
    path = download_file(remote, tmp_path / "cache", progress=lambda name, done, total: seen.append((done, total)))
    assert path == tmp_path / "cache" / "data.bin" and path.read_bytes() == data
    assert seen[-1] == (len(data), len(data)) and all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    assert leftovers(tmp_path / "cache") == ["data.bin"]  # no temp files left behind
    # already there with the right hash: nothing is fetched (these URLs would fail)
    assert download_file(remote_for(data, [f"{base}/missing/data.bin"]), tmp_path / "cache") == path


def test_corrupted_download_is_rejected_with_both_hashes(server, tmp_path):
    base, www = server
    data = payload()
    corrupted = bytearray(data)
    corrupted[1234] ^= 0xFF
    publish(www, "bad", "data.bin", bytes(corrupted))
    remote = remote_for(data, [f"{base}/bad/data.bin"])
    with pytest.raises(DownloadError) as err:
        download_file(remote, tmp_path / "cache")
    message = str(err.value)
    assert "corrupted download of data.bin" in message
    assert f"expected sha256 {remote.sha256}" in message
    assert f"got {hashlib.sha256(bytes(corrupted)).hexdigest()}" in message
    assert err.value.attempts[0][0] == f"{base}/bad/data.bin"
    assert leftovers(tmp_path / "cache") == []  # the corrupted bytes never reach the cache


def test_corrupted_mirror_falls_through_to_a_good_one(server, tmp_path):
    base, www = server
    data = payload(seed=1)
    publish(www, "bad", "data.bin", data[:-1] + b"\x00")
    publish(www, "good", "data.bin", data)
    remote = remote_for(data, [f"{base}/bad/data.bin", f"{base}/good/data.bin"])
    assert download_file(remote, tmp_path).read_bytes() == data


def test_oversize_body_and_stale_cached_file(server, tmp_path):
    base, www = server
    data = payload(seed=2)
    publish(www, "big", "data.bin", data + b"extra")
    publish(www, "good", "data.bin", data)
    with pytest.raises(DownloadError, match=f"server announces {len(data) + 5} bytes, expected {len(data)}"):
        download_file(remote_for(data, [f"{base}/big/data.bin"]), tmp_path)
    stale = tmp_path / "data.bin"
    stale.write_bytes(b"an old, broken copy")
    with pytest.raises(DownloadError, match="The existing .*data.bin has sha256 "):
        download_file(remote_for(data, [f"{base}/missing/data.bin"]), tmp_path)
    assert stale.read_bytes() == b"an old, broken copy"
    download_file(remote_for(data, [f"{base}/good/data.bin"]), tmp_path)  # replaced atomically
    assert stale.read_bytes() == data


def test_offline_error_lists_urls_and_manual_steps(refused_url, tmp_path):
    data = payload(1000)
    remote = remote_for(data, [refused_url, "ftp://example.invalid/data.bin"])
    with pytest.raises(DownloadError) as err:
        download_file(remote, tmp_path / "cache", timeout=5)
    message = str(err.value)
    assert f"{refused_url}: cannot connect" in message and "refused" in message.lower()
    assert "ftp://example.invalid/data.bin: not an http(s) URL" in message
    assert f"copy it to {tmp_path / 'cache' / 'data.bin'}" in message and remote.sha256 in message
    assert isinstance(err.value, OSError) and err.value.filename == "data.bin"
    assert leftovers(tmp_path / "cache") == []


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("ZERODL_DATA", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "zerodl" / "datasets"
    monkeypatch.setenv("ZERODL_DATA", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert dataset_cache_dir("mnist") == tmp_path / "env" / "mnist"
    assert dataset_cache_dir("mnist", tmp_path / "arg") == tmp_path / "arg" / "mnist"


def test_download_dataset_then_load_through_registry(server, tmp_path, monkeypatch):
    """The whole path: a table of files -> mirrors -> cache -> get_dataset(download=True)."""
    base, www = server
    arrays = write_fake_idx(www / "mirror", n_train=9, n_test=4)
    files = tuple(remote_for((www / "mirror" / name).read_bytes(), [f"{base}/nowhere/{name}"], name=name)
                  for name in sorted(p.name for p in (www / "mirror").iterdir()))
    monkeypatch.setitem(dl.REMOTE_FILES, "mnist", files)
    monkeypatch.setenv("ZERODL_DATA", str(tmp_path / "cache"))
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dataset("mnist")
    ds = get_dataset("mnist", "train", download=True, mirrors=[f"{base}/mirror/"])
    assert len(ds) == 9
    np.testing.assert_array_equal(ds.images[..., 0], arrays["train"][0])
    assert leftovers(tmp_path / "cache" / "mnist") == sorted(f.filename for f in files)
    root = tmp_path / "data"
    assert download_dataset("mnist", cache_dir=root, mirrors=[f"{base}/mirror"]) == root / "mnist"
    assert len(get_dataset("mnist", "test", root=root)) == 4
    with pytest.raises(ValueError, match="can download"):
        download_dataset("kmnist")


def test_published_table_is_well_formed():
    assert set(dl.REMOTE_FILES) == {"mnist", "fashion-mnist", "cifar10"}
    for files in dl.REMOTE_FILES.values():
        for f in files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and f.size > 0
            assert len(f.urls) >= 2 and all(u.endswith("/" + f.filename) for u in f.urls)
