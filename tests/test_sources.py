"""Camera sources: what is accepted, credentials kept hidden, files looped in real time, live streams
reconnected and stalls detected — with real FFmpeg (PyAV) against real servers on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ClipSpec, write_clip
from tests.streaming import Collector, FileServer, MJPEGServer, jpeg_frames
from veilwatch.errors import ConfigError
from veilwatch.sources.camera import AVSource, DemoSource, Source, SourceState, open_source
from veilwatch.sources.urls import SourceSpec, scrub, validate_source

SECRET = "hunter2"


def state(source: Source) -> SourceState:
    """The source's state now (a call, so that type narrowing does not outlive the moment)."""
    return source.state


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """10 flat frames, each a different grey, at 25 fps."""
    frames = [np.full((48, 64, 3), 20 + 20 * i, np.uint8) for i in range(10)]
    return write_clip(tmp_path / "clip.mp4", frames, ClipSpec(fps=25))


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("rtsp://10.0.0.5:554/stream1", "rtsp"),
        (f"rtsp://admin:{SECRET}@10.0.0.5/h264", "rtsp"),
        ("rtsps://camera.example.org/live", "rtsp"),
        ("http://10.0.0.7/video.mjpg", "http"),
        ("https://example.org/live/index.m3u8", "http"),
        ("HTTP://EXAMPLE.ORG/x", "http"),
        ("/dev/video0", "device"),
        ("/dev/video12", "device"),
        ("demo:walkers", "demo"),
        ("demo:walkers?seed=3&people=2", "demo"),
    ],
)
def test_accepted_sources(text: str, kind: str) -> None:
    assert validate_source(text).kind == kind


def test_file_source_is_absolute_and_confined(clip: Path) -> None:
    spec = validate_source(clip.name, base_dir=clip.parent)
    assert spec.kind == "file"
    assert spec.url == str(clip) and spec.url.startswith("/")  # never readable as a protocol prefix
    assert spec.options["protocol_whitelist"] == "file"
    assert "concat" not in spec.options["format_whitelist"] and "hls" not in spec.options["format_whitelist"]


def test_network_sources_carry_protocol_whitelists() -> None:
    http = validate_source("https://example.org/live/index.m3u8").options
    assert http["protocol_whitelist"] == "http,https,tcp,tls"
    rtsp = validate_source("rtsp://10.0.0.5/s").options
    assert rtsp["protocol_whitelist"] == "rtp,rtsp,udp,tcp,tls"
    assert rtsp["format_whitelist"] == "rtsp"
    for options in (http, rtsp):
        assert not {"file", "exec", "pipe", "crypto", "data"} & set(options["protocol_whitelist"].split(","))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("exec:rm -rf /", "FFmpeg protocol 'exec:'"),
        ("pipe:0", "FFmpeg protocol 'pipe:'"),
        ("subfile,,start,0,end,100,,:/etc/passwd", "FFmpeg protocol 'subfile:'"),
        ("concat:/etc/passwd|/etc/shadow", "FFmpeg protocol 'concat:'"),
        ("data:text/plain;base64,aGk=", "FFmpeg protocol 'data:'"),
        ("file:///etc/passwd", "FFmpeg protocol 'file:'"),
        ("file:/etc/passwd", "FFmpeg protocol 'file:'"),
        ("tcp://10.0.0.5:80", "FFmpeg protocol 'tcp:'"),
        ("udp://239.0.0.1:1234", "FFmpeg protocol 'udp:'"),
        ("crypto:http://x/y", "FFmpeg protocol 'crypto:'"),
        ("async:http://x/y", "FFmpeg protocol 'async:'"),
        ("gopher://x", "FFmpeg protocol 'gopher:'"),
        ("ftp://x/y.mp4", "FFmpeg protocol 'ftp:'"),
        ("javascript:alert(1)", "unsupported scheme"),
        ("rtsp:/no-host", "names no host"),
        ("http://cam:99999/", "malformed"),
        ("http://cam/a b", "spaces"),
        ("rtsp://cam/x\nexec:ls", "control characters"),
        ("/dev/sda", "only capture devices"),
        ("/no/such/file.mp4", "nor an existing file"),
        ("/tmp", "not a regular file"),
        ("", "empty"),
        ("demo:nothing", "unknown demo"),
        ("demo:walkers?people=99", "people must be"),
        ("demo:walkers?seed=-1", "seed must be"),
        ("demo:walkers?colour=red", "unknown parameter"),
    ],
)
def test_rejected_sources(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        validate_source(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        f"gopher://admin:{SECRET}@10.0.0.5/",
        f"rtsp://admin:{SECRET}@/nohost",
        f"http://admin:{SECRET}@cam:99999/",
        f"https://cam/a b?password={SECRET}",
        f"exec:x?token={SECRET}",
    ],
)
def test_rejection_messages_hide_credentials(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_source(text)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"rtsp://admin:{SECRET}@10.0.0.5:554/s1", "rtsp://***@10.0.0.5:554/s1"),
        (f"rtsp://admin:p@ss{SECRET}@10.0.0.5/s1", "rtsp://***@10.0.0.5/s1"),  # '@' inside the password
        (
            f"http://cam/video.cgi?user=admin&password={SECRET}&res=hd",
            "http://cam/video.cgi?user=***&password=***&res=hd",
        ),
        (f"https://cam/live?token={SECRET}", "https://cam/live?token=***"),
        (f"https://cam/live?api_key={SECRET}#x", "https://cam/live?api_key=***#x"),
        (f"http://cam/snap.cgi?loginuse=admin&loginpas={SECRET}", "http://cam/snap.cgi?loginuse=***&loginpas=***"),
        (f"error opening 'rtsp://u:{SECRET}@h/x': refused", "error opening 'rtsp://***@h/x': refused"),
        ("rtsp://10.0.0.5/stream?channel=1", "rtsp://10.0.0.5/stream?channel=1"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_spec_repr_hides_credentials() -> None:
    spec = validate_source(f"rtsp://admin:{SECRET}@10.0.0.5/s1")
    assert SECRET not in repr(spec) and SECRET not in spec.display
    assert SECRET in spec.url  # FFmpeg still needs it


def test_open_source_picks_the_reader(clip: Path) -> None:
    assert isinstance(open_source("demo:walkers?people=2"), DemoSource)
    assert isinstance(open_source(str(clip)), AVSource)
    with pytest.raises(ConfigError):
        open_source("exec:ls")


# --- files ---------------------------------------------------------------------------------------


def test_file_source_loops_in_real_time(clip: Path) -> None:
    source = AVSource(validate_source(str(clip)))
    collector = Collector(source)
    try:
        start = time.monotonic()
        assert collector.wait_for(lambda: len(collector.frames) >= 25, timeout=10)
        elapsed = collector.frames[24].captured_at - collector.frames[0].captured_at
        assert state(source) is SourceState.LIVE
    finally:
        collector.close()
    assert state(source) is SourceState.OFFLINE
    assert 0.85 <= elapsed <= 2.0, f"25 frames at 25 fps took {elapsed:.2f} s"
    assert time.monotonic() - start >= 0.85
    assert [c.seq for c in collector.frames[:25]] == list(range(25))
    greys = [float(c.frame.pixels.mean()) for c in collector.frames[:25]]
    assert greys[10] == pytest.approx(greys[0], abs=3)  # frame 10 is frame 0 again
    assert greys[9] > greys[0] + 100
    assert source.fps == pytest.approx(25)


def test_playlist_file_is_refused_at_open(tmp_path: Path, clip: Path) -> None:
    """A local file that is really an FFmpeg concat script naming other files is not opened."""
    script = tmp_path / "list.mp4"
    script.write_text(f"ffconcat version 1.0\nfile {clip}\n")
    source = AVSource(validate_source(str(script)), max_backoff_s=1)
    collector = Collector(source)
    try:
        assert collector.wait_for(lambda: source.last_error is not None, timeout=5)
        assert state(source) is SourceState.RECONNECTING
        assert not collector.frames
    finally:
        collector.close()


# --- live streams --------------------------------------------------------------------------------


@pytest.fixture
def mjpeg() -> Iterator[MJPEGServer]:
    server = MJPEGServer(jpeg_frames()).start()
    yield server
    server.stop()


def test_live_stream_reconnects(mjpeg: MJPEGServer) -> None:
    source = AVSource(validate_source(mjpeg.url), open_timeout_s=2, read_timeout_s=2, max_backoff_s=1)
    collector = Collector(source)
    try:
        assert collector.wait_for(lambda: len(collector.frames) >= 5, timeout=10)
        assert state(source) is SourceState.LIVE
        mjpeg.stop()
        assert collector.wait_for(lambda: state(source) is SourceState.RECONNECTING, timeout=5)
        assert source.last_error
        before = len(collector.frames)
        time.sleep(0.3)
        assert len(collector.frames) == before
        mjpeg.start()
        assert collector.wait_for(lambda: len(collector.frames) >= before + 5, timeout=10)
        assert state(source) is SourceState.LIVE
    finally:
        collector.close()
    seqs = [c.seq for c in collector.frames]
    assert seqs == sorted(set(seqs))  # numbering continues across reconnects


def test_source_errors_hide_credentials(mjpeg: MJPEGServer) -> None:
    mjpeg.stop()  # refuse connections: every open fails
    url = mjpeg.url.replace("http://", f"http://admin:{SECRET}@") + f"?token={SECRET}"
    source = AVSource(validate_source(url), max_backoff_s=1)
    collector = Collector(source)
    try:
        assert collector.wait_for(lambda: source.last_error is not None, timeout=5)
    finally:
        collector.close()
    assert SECRET not in (source.last_error or "") and SECRET not in source.display


@pytest.mark.parametrize("mode", ["silent", "stall"])
def test_stalled_stream_times_out(mode: str) -> None:
    """A server that accepts and then sends nothing (at all, or after a few frames) trips the timeout."""
    server = MJPEGServer(jpeg_frames(), mode=mode).start()
    source = AVSource(validate_source(server.url), open_timeout_s=1, read_timeout_s=1, max_backoff_s=1)
    collector = Collector(source)
    try:
        start = time.monotonic()
        assert collector.wait_for(lambda: state(source) is SourceState.STALLED, timeout=6)
        assert time.monotonic() - start < 4
        assert "stalled" in (source.last_error or "")
        assert len(collector.frames) == (0 if mode == "silent" else 3)
    finally:
        collector.close()
        server.stop()


def test_hls_over_http_plays_but_cannot_reach_local_files(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(8)]
    segment = write_clip(tmp_path / "seg0.ts", frames, ClipSpec(fps=25))
    head = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:0.32,\n"
    (tmp_path / "good.m3u8").write_text(f"{head}seg0.ts\n#EXT-X-ENDLIST\n")
    (tmp_path / "evil.m3u8").write_text(f"{head}file://{segment}\n#EXT-X-ENDLIST\n")
    server = FileServer(tmp_path)
    try:
        good = AVSource(validate_source(server.url("good.m3u8")), open_timeout_s=2, read_timeout_s=2)
        collector = Collector(good)
        try:
            assert collector.wait_for(lambda: len(collector.frames) >= 5, timeout=10)
        finally:
            collector.close()
        evil = AVSource(validate_source(server.url("evil.m3u8")), open_timeout_s=2, read_timeout_s=2)
        collector = Collector(evil)
        try:
            assert collector.wait_for(lambda: evil.last_error is not None, timeout=8)
            assert not collector.frames
        finally:
            collector.close()
    finally:
        server.close()


def test_unreachable_device_keeps_retrying() -> None:
    source = AVSource(SourceSpec("device", "/dev/video99", {}, format="v4l2"), max_backoff_s=1)
    collector = Collector(source)
    try:
        assert collector.wait_for(lambda: state(source) is SourceState.RECONNECTING, timeout=5)
    finally:
        collector.close()
    assert state(source) is SourceState.OFFLINE


# --- the demo camera -----------------------------------------------------------------------------


def test_demo_is_deterministic_with_ground_truth() -> None:
    demo = DemoSource(seed=5, people=4)
    again = DemoSource(seed=5, people=4)
    other = DemoSource(seed=6, people=4)
    assert np.array_equal(demo.frame(17), again.frame(17))
    assert demo.ground_truth(17) == again.ground_truth(17)
    assert not np.array_equal(demo.frame(17), other.frame(17))
    assert demo.ground_truth(17) != demo.ground_truth(18)  # they walk
    for index in (0, 17, 123):
        boxes = demo.ground_truth(index)
        assert len(boxes) == 4
        pixels = demo.frame(index)
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720
            assert 23 <= y1 - y0 <= 200
            face = pixels[y0:y1, x0:x1].astype(int)
            assert face.std() > 20  # a face is there, not the plain backdrop
        assert pixels.shape == (720, 1280, 3)


def test_demo_runs_in_real_time() -> None:
    demo = DemoSource(seed=1, people=2, width=320, height=180, fps=20)
    collector = Collector(demo)
    try:
        assert collector.wait_for(lambda: len(collector.frames) >= 11, timeout=5)
        assert state(demo) is SourceState.LIVE
    finally:
        collector.close()
    span = collector.frames[10].captured_at - collector.frames[0].captured_at
    assert 0.45 <= span <= 1.0
    first = collector.frames[3]
    assert np.array_equal(first.frame.pixels, demo.frame(first.seq))
    assert state(demo) is SourceState.OFFLINE
