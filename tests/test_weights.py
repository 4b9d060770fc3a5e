"""Default-weights download (against a loopback HTTP server), its cache and checksum, and the offline error."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ascend_slim import AscendSlimError
from ascend_slim.fileio import file_sha256
from ascend_slim.weights import download_default_weights, resolve_weights


@pytest.fixture
def server(yolov5n_pt: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(yolov5n_pt.parent))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def test_download_once_then_verify(server: str, yolov5n_pt: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASCEND_SLIM_CACHE", str(tmp_path))
    path = download_default_weights(f"{server}/{yolov5n_pt.name}")
    assert path.read_bytes() == yolov5n_pt.read_bytes()
    assert (path.parent / f"{path.name}.sha256").read_text().split()[0] == file_sha256(yolov5n_pt)
    assert download_default_weights("http://127.0.0.1:9/unreachable/yolov5n.pt") == path  # cached: no network
    with open(path, "r+b") as f:  # a damaged cache file is detected
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(AscendSlimError, match="checksum"):
        download_default_weights(f"{server}/{yolov5n_pt.name}")


def test_offline_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASCEND_SLIM_CACHE", str(tmp_path))
    with pytest.raises(AscendSlimError, match="--weights") as info:
        download_default_weights("http://127.0.0.1:9/yolov5s.pt")
    assert "ASCEND_SLIM_WEIGHTS" in str(info.value)
    assert not list(tmp_path.rglob("*.pt*"))  # no partial file left behind


def test_resolve_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yolov5n_pt: Path) -> None:
    monkeypatch.setenv("ASCEND_SLIM_WEIGHTS", str(yolov5n_pt))
    assert resolve_weights(None) == yolov5n_pt
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"x")
    with pytest.raises(AscendSlimError, match="unsupported weights"):
        resolve_weights(bad)


def test_export_cache_keeps_the_most_recently_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from ascend_slim import weights
    from ascend_slim.model.checkpoint import save_checkpoint
    from ascend_slim.model.yolo import YOLOv5

    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "MAX_CACHED_EXPORTS", 2)
    ckpt = tmp_path / "n.pt"
    save_checkpoint(ckpt, YOLOv5.from_yaml("yolov5n"), img_size=64)
    folder = tmp_path / "cache" / "onnx"
    folder.mkdir(parents=True)
    older, old = folder / "older.onnx", folder / "old.onnx"
    for age, path in ((300, older), (200, old)):
        path.write_bytes(b"stale export")
        os.utime(path, (path.stat().st_atime - age,) * 2)
    first = weights.onnx_for_checkpoint(ckpt, 64, dynamic=True)
    assert sorted(p.name for p in folder.iterdir()) == sorted([first.name, "old.onnx"])  # 'older' evicted
    assert weights.onnx_for_checkpoint(ckpt, 64, dynamic=True) == first  # a hit: no new export
    second = weights.onnx_for_checkpoint(ckpt, 96, dynamic=True)
    assert sorted(p.name for p in folder.iterdir()) == sorted([first.name, second.name])
