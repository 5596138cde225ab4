"""Real little servers on loopback for the source tests: MJPEG over HTTP, static files, silence."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veilwatch.sources.base import CapturedFrame, Source

BOUNDARY = b"frame"


def jpeg_frames(count: int = 10, width: int = 160, height: int = 120) -> list[bytes]:
    """Small JPEGs of flat greys that differ from frame to frame."""
    frames = []
    for i in range(count):
        pixels = np.full((height, width, 3), (40 + 20 * i) % 256, np.uint8)
        ok, data = cv2.imencode(".jpg", pixels)
        assert ok
        frames.append(data.tobytes())
    return frames


class MJPEGServer:
    """multipart/x-mixed-replace JPEGs over HTTP, like many IP cameras; can go silent or stall mid-stream.

    mode "stream": frames forever; "silent": accepts, then sends nothing; "stall": a few frames, then nothing.
    """

    def __init__(self, frames: list[bytes], fps: float = 20.0, mode: str = "stream", stall_after: int = 3) -> None:
        self.frames, self.fps, self.mode, self.stall_after = frames, fps, mode, stall_after
        self.port = 0
        self._closing = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the stream is."""
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def start(self) -> MJPEGServer:
        """Listen (on the previous port after a stop, so clients can reconnect)."""
        self._closing.clear()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end every open stream."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with contextlib.suppress(OSError):  # the client went away
                    owner._serve(self)

        return Handler

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if self.mode == "silent":
            self._closing.wait(30)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        handler.end_headers()
        i = 0
        while not self._closing.is_set():
            if self.mode == "stall" and i >= self.stall_after:
                self._closing.wait(30)
                return
            data = self.frames[i % len(self.frames)]
            head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (BOUNDARY, len(data))
            handler.wfile.write(head + data + b"\r\n")
            handler.wfile.flush()
            i += 1
            self._closing.wait(1 / self.fps)


class FileServer:
    """A folder served over HTTP on loopback."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(QuietFiles, directory=str(folder))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        """The URL of a file in the folder."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler without the access log."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Collector:
    """Reads a source on a background thread into a list, like a pipeline's capture thread."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.frames: list[CapturedFrame] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for captured in self.source.frames(self.stop):
            self.frames.append(captured)

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Poll until the condition holds; False if it did not within `timeout` s."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    def close(self) -> None:
        """Stop reading and wait for the thread."""
        self.stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the source did not stop"
