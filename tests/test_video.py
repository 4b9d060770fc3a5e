"""Video sources end to end on real clips built from the shared VOC trainval images with OpenCV's VideoWriter:
Detector.stream on video, `detect --source clip.mp4`, --vid-stride, truncated and zero-frame files, stream URLs
(a local HTTP server, and addresses that refuse or never answer), webcam indices and Ctrl-C."""

from __future__ import annotations

import functools
import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from ascend_slim import AscendSlimError, Detector
from ascend_slim.data.yolo_txt import format_yolo_lines
from ascend_slim.videoio import VideoReader, VideoReadError, VideoWriter, video_source

SIZE = (320, 240)  # width, height of the test clips
FPS = 10.0


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ascend_slim", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def trainval_frames(voc_root: Path, n: int) -> list[np.ndarray]:
    ids = (voc_root / "VOC2007/ImageSets/Main/trainval.txt").read_text().split()
    return [cv2.resize(cv2.imread(str(voc_root / f"VOC2007/JPEGImages/{i}.jpg")), SIZE) for i in ids[:n]]


def write_clip(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {path.suffix}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def detector(yolov5n_onnx: Path) -> Detector:
    return Detector(yolov5n_onnx, num_threads=1)


@pytest.fixture(scope="module")
def clip(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames (distinct VOC trainval photos) as MPEG-4 in .mp4."""
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4", trainval_frames(voc_root, 24))


def test_video_source_kinds(tmp_path: Path) -> None:
    assert video_source("clip.MP4") == video_source(Path("clip.MP4"))
    assert (video_source("a/clip.MP4").kind, video_source("a/clip.MP4").name) == ("file", "clip")
    assert video_source("rtsp://cam.local:554/live/main").kind == "stream"
    assert video_source("rtsp://cam.local:554/live/main").name == "main"
    assert video_source("https://host/x.m3u8").live
    assert (video_source("0").kind, video_source("0").uri, video_source(1).name) == ("webcam", 0, "webcam1")
    assert video_source("images/") is None and video_source("bus.jpg") is None and video_source("*.jpg") is None
    (tmp_path / "7").mkdir()
    assert video_source(str(tmp_path / "7")) is None  # an existing folder named like an index is a folder


def test_stream_equals_image_mode_on_the_same_frames(detector: Detector, clip: Path) -> None:
    frames = decode_all(clip)
    assert len(frames) == 24
    streamed = list(detector.stream(clip, workers=2))
    assert [i for i, _, _ in streamed] == list(range(24))
    direct = detector.predict(frames)
    assert sum(len(d) for d in direct) > 20  # real photos: the comparison has boxes to compare
    for (_, frame, dets), ref, original in zip(streamed, direct, frames):
        np.testing.assert_array_equal(frame, original)
        np.testing.assert_array_equal(dets.to_array(), ref.to_array())
        assert dets.image_shape == (SIZE[1], SIZE[0])


def test_vid_stride_keeps_every_nth_frame(detector: Detector, clip: Path) -> None:
    frames = decode_all(clip)
    with VideoReader(clip, stride=5) as reader:
        assert reader.expected_frames == 5 and reader.fps == FPS and reader.size == SIZE
        streamed = list(detector.stream(reader))
    assert [i for i, _, _ in streamed] == [0, 5, 10, 15, 20]
    for (index, frame, dets), ref in zip(streamed, detector.predict([frames[i] for i in (0, 5, 10, 15, 20)])):
        np.testing.assert_array_equal(frame, frames[index])
        np.testing.assert_array_equal(dets.to_array(), ref.to_array())


def test_stream_rejects_a_single_image(detector: Detector, images_dir: Path) -> None:
    with pytest.raises(AscendSlimError, match="use predict"):
        next(iter(detector.stream(images_dir / "bus.jpg")))
    with pytest.raises(AscendSlimError, match=r"vid_stride must lie in \[1, 1000\]"):
        VideoReader("clip.mp4", stride=0)


def test_detect_cli_writes_the_annotated_clip_and_per_frame_labels(yolov5n_onnx: Path, clip: Path,
                                                                   detector: Detector, tmp_path: Path) -> None:
    out = cli("detect", "--weights", yolov5n_onnx, "--source", clip, "--out", tmp_path / "res", "--save-txt")
    assert out.returncode == 0, out.stderr
    assert "24 frame(s)" in out.stdout
    frames = decode_all(clip)
    drawn = cv2.VideoCapture(str(tmp_path / "res" / "clip.mp4"))
    assert drawn.get(cv2.CAP_PROP_FPS) == FPS
    assert (drawn.get(cv2.CAP_PROP_FRAME_WIDTH), drawn.get(cv2.CAP_PROP_FRAME_HEIGHT)) == SIZE
    drawn.release()
    written = decode_all(tmp_path / "res" / "clip.mp4")
    assert len(written) == 24
    refs = detector.predict(frames)
    for i, (ref, original, annotated) in enumerate(zip(refs, frames, written)):
        label = tmp_path / "res" / "labels" / f"clip_{i}.txt"
        assert label.read_text() == format_yolo_lines(ref.boxes, ref.class_ids, ref.image_shape, scores=ref.scores)
        if len(ref):  # boxes were drawn: the frame differs from the source beyond compression noise
            assert np.abs(annotated.astype(int) - original).max() > 100
    assert not list((tmp_path / "res").glob(".*"))  # no temporary file left behind


def test_detect_cli_vid_stride_and_nosave(yolov5n_onnx: Path, clip: Path, tmp_path: Path) -> None:
    out = cli("detect", "--weights", yolov5n_onnx, "--source", clip, "--out", tmp_path / "res", "--vid-stride", "7",
              "--save-txt", "--nosave")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "res").rglob("*.*")) == [f"clip_{i}.txt" for i in (0, 14, 21, 7)]
    out = cli("detect", "--weights", yolov5n_onnx, "--source", clip, "--vid-stride", "0")
    assert out.returncode == 2 and "--vid-stride" in out.stderr


def test_speed_reports_video_frames_per_second(yolov5n_onnx: Path, clip: Path, tmp_path: Path) -> None:
    out = cli("speed", "--weights", yolov5n_onnx, "--source", clip, "--vid-stride", "2", "--workers", "2",
              "--json", tmp_path / "speed.json")
    assert out.returncode == 0, out.stderr
    assert "video end to end (decode + preprocess + inference + postprocess)" in out.stdout
    assert "images only (the same frames, decoded beforehand)" in out.stdout
    video = json.loads((tmp_path / "speed.json").read_text())["video"]
    assert (video["frames"], video["size"], video["fps"], video["vid_stride"]) == (12, list(SIZE), FPS, 2)
    assert video["frames_per_s"] > 0 and video["images_only_frames_per_s"] > 0
    assert video["video_vs_images"] == pytest.approx(video["frames_per_s"] / video["images_only_frames_per_s"])
    assert video["threads_per_inference"] == 1


def test_truncated_file_keeps_what_decoded_and_names_the_frame(yolov5n_onnx: Path, voc_root: Path,
                                                               tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "whole.avi", trainval_frames(voc_root, 30), fourcc="MJPG")
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) * 6 // 10])
    decodable = len(decode_all(cut))
    assert 0 < decodable < 30
    out = cli("detect", "--weights", yolov5n_onnx, "--source", cut, "--out", tmp_path / "res")
    assert out.returncode == 0, out.stderr
    assert f"{decodable} frame(s) of {cut}" in out.stdout
    warning = out.stderr.strip().splitlines()[-1]
    assert warning == (f"warning: decoding {cut} stopped at frame {decodable} of the 30 its header declares (the "
                       f"file is truncated or corrupt); the {decodable} frame(s) before it were processed")
    assert len(decode_all(tmp_path / "res" / "cut.mp4")) == decodable  # what decoded is written and playable


@pytest.mark.parametrize("suffix, fourcc, message", [
    (".mp4", "mp4v", "cannot open video {}: not a video OpenCV's FFmpeg reads, or its container is truncated"),
    (".avi", "MJPG", "video {} has no decodable frames"),  # the container opens, holds nothing
])
def test_zero_frame_file_fails_with_one_line(yolov5n_onnx: Path, tmp_path: Path, suffix: str, fourcc: str,
                                             message: str) -> None:
    empty = write_clip(tmp_path / f"empty{suffix}", [], fourcc=fourcc)
    assert empty.is_file()
    out = cli("detect", "--weights", yolov5n_onnx, "--source", empty, "--out", tmp_path / "res")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message.format(empty) in errors[0]
    assert not (tmp_path / "res").exists()  # nothing half-written


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a camera that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in accepted:
        conn.close()


def test_bad_url_fails_fast_with_one_line(yolov5n_onnx: Path, silent_server: int, tmp_path: Path) -> None:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    closed_port = refused.getsockname()[1]
    refused.close()  # nothing listens there any more
    for url in (f"rtsp://127.0.0.1:{closed_port}/live", f"rtsp://127.0.0.1:{silent_server}/live",
                f"http://127.0.0.1:{silent_server}/cam.mjpg"):
        out = cli("detect", "--weights", yolov5n_onnx, "--source", url, "--timeout", "1", "--out", tmp_path / "res",
                  timeout=60)  # the guard against a hang: far above the 1 s asked for
        assert out.returncode == 1
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert lines == [f"ascend-slim detect: error: cannot open stream {url}: unreachable, or no video within 1 s "
                         "(check the address, the path and that the camera or server is up)"]
        assert not (tmp_path / "res").exists()


def test_missing_webcam_and_video_fail_with_one_line(yolov5n_onnx: Path, tmp_path: Path) -> None:
    out = cli("detect", "--weights", yolov5n_onnx, "--source", "9", "--out", tmp_path / "res")
    assert out.returncode == 1 and out.stderr.strip() == (
        "ascend-slim detect: error: cannot open webcam 9: no camera at that index (check /dev/video*)")
    out = cli("detect", "--weights", yolov5n_onnx, "--source", tmp_path / "gone.mp4", "--out", tmp_path / "res")
    assert out.returncode == 1 and f"video not found: {tmp_path / 'gone.mp4'}" in out.stderr


@pytest.fixture()
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over ``tmp_path/served``: an http:// stream source for OpenCV's FFmpeg."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", folder
    server.shutdown()
    server.server_close()


def test_http_stream_through_the_reader_writes_closed_segments(yolov5n_onnx: Path, voc_root: Path,
                                                               detector: Detector, http_server, tmp_path: Path) -> None:
    """A stream URL: no frame count, frames/s progress, output cut into --segment files, all closed at the end."""
    base, folder = http_server
    frames = trainval_frames(voc_root, 24)
    write_clip(folder / "cam.mkv", frames)  # Matroska streams without seeking back (mp4 keeps its index at the end)
    url = f"{base}/cam.mkv"
    with VideoReader(url) as reader:
        assert reader.source.live and reader.frame_count is None and reader.expected_frames is None
        streamed = list(detector.stream(reader, workers=2))
    served = decode_all(folder / "cam.mkv")
    assert [i for i, _, _ in streamed] == list(range(24))
    for (_, frame, dets), ref, original in zip(streamed, detector.predict(served), served):
        np.testing.assert_array_equal(frame, original)
        np.testing.assert_array_equal(dets.to_array(), ref.to_array())

    out = cli("detect", "--weights", yolov5n_onnx, "--source", url, "--segment", "1", "--out", tmp_path / "res")
    assert out.returncode == 0, out.stderr
    assert "24 frame(s)" in out.stdout and "the stream ended" in out.stdout
    assert "frame/s" in out.stderr  # the progress bar shows the rate, not a total
    segments = sorted((tmp_path / "res").glob("cam_*.mp4"))
    assert [p.name for p in segments] == ["cam_000.mp4", "cam_001.mp4", "cam_002.mp4"]
    assert [len(decode_all(p)) for p in segments] == [10, 10, 4]  # 1 s at 10 fps each; the last one closed at EOF


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_h264(path: Path, frames: list[np.ndarray]) -> Path:
    """H.264 in .mp4 through PyAV's libx264 (OpenCV's wheels have no H.264 encoder); no B-frames, as cameras."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"bf": "0", "g": "10"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())
    return path


@pytest.fixture()
def rtsp_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local RTSP server (aio-rtsp-toolkit, a test dependency) publishing the files of ``tmp_path/rtsp``: each
    PLAY streams the file once over RTP, then the stream ends."""
    folder = tmp_path / "rtsp"
    folder.mkdir()
    port = free_port()
    code = ("import asyncio, sys; from aio_rtsp_toolkit.server import serve; "
            "asyncio.run(serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), control_port=int(sys.argv[3])))")
    server = subprocess.Popen([sys.executable, "-c", code, str(folder), str(port), str(free_port())],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, "the RTSP server did not start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the RTSP server did not listen within 30 s"
            time.sleep(0.1)
    yield f"rtsp://127.0.0.1:{port}", folder
    server.terminate()
    server.wait(timeout=10)


def test_rtsp_stream_from_a_local_server(yolov5n_onnx: Path, voc_root: Path, detector: Detector, rtsp_server,
                                         tmp_path: Path) -> None:
    """A real RTSP server and H.264 (what cameras send): the frames the stream delivers are the file's frames,
    detections equal image mode on them, output segments are closed when the stream ends, labels per frame."""
    base, folder = rtsp_server
    served = write_h264(folder / "cam.mp4", trainval_frames(voc_root, 24))
    frames = decode_all(served)
    assert len(frames) == 24
    refs = detector.predict(frames)
    url = f"{base}/cam.mp4"
    streamed = list(detector.stream(url, workers=2))
    assert [i for i, _, _ in streamed] == list(range(24))
    for (_, frame, dets), ref, original in zip(streamed, refs, frames):
        np.testing.assert_array_equal(frame, original)
        np.testing.assert_array_equal(dets.to_array(), ref.to_array())

    out = cli("detect", "--weights", yolov5n_onnx, "--source", url, "--segment", "1", "--save-txt", "--out",
              tmp_path / "res")
    assert out.returncode == 0, out.stderr
    assert f"24 frame(s) of {url} (the stream ended)" in out.stdout
    segments = sorted((tmp_path / "res").glob("cam_*.mp4"))
    assert [len(decode_all(p)) for p in segments] == [10, 10, 4]
    for i, ref in enumerate(refs):
        label = tmp_path / "res" / "labels" / f"cam_{i}.txt"
        assert label.read_text() == format_yolo_lines(ref.boxes, ref.class_ids, ref.image_shape, scores=ref.scores)


def test_h264_file(detector: Detector, voc_root: Path, tmp_path: Path) -> None:
    clip = write_h264(tmp_path / "h264.mp4", trainval_frames(voc_root, 12))
    with VideoReader(clip, stride=4) as reader:
        assert (reader.frame_count, reader.expected_frames, reader.fps) == (12, 3, FPS)
        streamed = list(detector.stream(reader))
    frames = decode_all(clip)
    assert [i for i, _, _ in streamed] == [0, 4, 8]
    for (index, frame, dets), ref in zip(streamed, detector.predict([frames[i] for i in (0, 4, 8)])):
        np.testing.assert_array_equal(frame, frames[index])
        np.testing.assert_array_equal(dets.to_array(), ref.to_array())


def test_video_writer_segments_and_size_check(tmp_path: Path) -> None:
    frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    with VideoWriter(tmp_path / "out.mp4", FPS, SIZE, segment_frames=2) as writer:
        for _ in range(3):
            writer.write(frame)
        assert [p.name for p in writer.written] == ["out_000.mp4"]
        assert [p.name for p in tmp_path.glob(".*")] == [".out_001.partial.mp4"]  # in progress, hidden
        with pytest.raises(AscendSlimError, match="does not match"):
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_000.mp4", "out_001.mp4"]
    with pytest.raises(VideoReadError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")


def test_sigint_leaves_a_playable_clip_with_the_frames_so_far(yolov5n_onnx: Path, voc_root: Path,
                                                              tmp_path: Path) -> None:
    long_clip = write_clip(tmp_path / "long.mp4", trainval_frames(voc_root, 40) * 10)  # 400 frames
    res = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "ascend_slim", "detect", "--weights", str(yolov5n_onnx),
                             "--source", str(long_clip), "--out", str(res), "--save-txt", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list((res / "labels").glob("*.txt"))) < 5:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "detect made no progress"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr
    done = int(stdout.split(" frame(s)")[0])
    labels = len(list((res / "labels").glob("*.txt")))
    written = decode_all(res / "long.mp4")  # the container was closed: it opens and every frame decodes
    assert 5 <= len(written) < 400
    assert abs(len(written) - done) <= 1 and abs(labels - done) <= 1  # Ctrl-C may land between the two writes
    assert not list(res.glob(".*"))


def test_webcam_index_runs_through_the_same_reader(detector: Detector, clip: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    """No camera here: OpenCV's capture of index 0 is given the clip (a camera that sends 24 frames and stops);
    everything after the capture is the webcam path: live source, no frame count, segments, webcam0_* names."""
    from ascend_slim.cli import main

    real_capture = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: real_capture(str(clip)) if args == (0,)
                        else real_capture(*args))
    with VideoReader("0") as reader:
        assert (reader.source.kind, reader.source.name, reader.frame_count) == ("webcam", "webcam0", None)
        streamed = list(detector.stream(reader, workers=2))
    frames = decode_all(clip)
    assert [i for i, _, _ in streamed] == list(range(24))
    for (_, frame, dets), ref, original in zip(streamed, detector.predict(frames), frames):
        np.testing.assert_array_equal(frame, original)
        np.testing.assert_array_equal(dets.to_array(), ref.to_array())
    code = main(["detect", "--weights", str(detector.weights), "--source", "0", "--segment", "2", "--vid-stride", "2",
                 "--out", str(tmp_path / "res")])
    assert code == 0
    assert "12 frame(s) of 0 (the stream ended)" in capsys.readouterr().out
    segments = sorted((tmp_path / "res").glob("webcam0_*.mp4"))
    assert [len(decode_all(p)) for p in segments] == [12]  # 2 s at the camera's 10 fps: one unfinished segment
