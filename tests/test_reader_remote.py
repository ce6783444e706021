"""Remote shards against real HTTP servers on 127.0.0.1: an outage that ends, a connection cut
mid-file (resumed with Range), a server that keeps failing, and a shard swapped on the server."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

from anyir.data.balance import epoch_counts
from anyir.data.reader import RetryPolicy, ShardRetryWarning, ShardUnavailable
from anyir.data.stream import MixtureStream, ShardSkippedWarning

FAST_RETRY = RetryPolicy(attempts=4, first_wait_s=0.05, max_wait_s=0.1, timeout_s=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest_only(tiny_shards: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "manifest_only"
    folder.mkdir()
    shutil.copy(tiny_shards / "manifest.json", folder)
    return folder


def start_server(directory: Path, port: int) -> subprocess.Popen:
    """``python -m http.server`` in its own process, so the test can really kill it."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("http.server did not start")


def test_a_three_second_outage_mid_run_is_retried_and_the_epoch_completes(tiny_shards, tmp_path):
    port = free_port()
    server = start_server(tiny_shards, port)
    try:
        s = MixtureStream(manifest_only(tiny_shards, tmp_path), "natural", batch_size=2, crop=32,
                          samples_per_epoch=40, shuffle_buffer=1, url_prefix=f"http://127.0.0.1:{port}/{{path}}",
                          retry=RetryPolicy(attempts=8, first_wait_s=0.5, max_wait_s=4))
        batches = iter(s)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = [next(batches)]  # some shards fetched
            server.kill()
            server.wait()
            killed_at = time.monotonic()
            restart = threading.Timer(3.0, lambda: holder.append(start_server(tiny_shards, port)))
            holder: list[subprocess.Popen] = []
            restart.start()
            got += list(batches)  # the rest needs shards that are not fetched yet: they wait for the server
            restart.join()
        assert time.monotonic() - killed_at >= 3.0
        retries = [w for w in caught if issubclass(w.category, ShardRetryWarning)]
        assert retries and "retrying in" in str(retries[0].message)
        assert not [w for w in caught if issubclass(w.category, ShardSkippedWarning)]
        assert len(got) == 20 and s.skipped_shards == 0
        assert Counter(t for b in got for t in b["task"]) == Counter(epoch_counts(s.weights, 40))
    finally:
        server.kill()
        for proc in holder if "holder" in locals() else []:
            proc.kill()


class _CuttingHandler(http.server.SimpleHTTPRequestHandler):
    """Sends the full Content-Length but only half the body on the first request of each file;
    honours ``Range: bytes=N-`` (206) afterwards. ``always_cut`` cuts every request."""

    seen: Counter = Counter()
    ranges: list[str] = []
    always_cut = False

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        first = self.seen[self.path] == 0
        self.seen[self.path] += 1
        start = 0
        if rng := self.headers.get("Range"):
            self.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if first or self.always_cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # cut mid-file
            self.close_connection = True
            return
        self.wfile.write(body)


def serve_in_thread(directory: Path, handler: type) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a, **kw: handler(*a, directory=str(directory), **kw))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def test_a_connection_cut_mid_file_resumes_with_range_and_reads_the_right_bytes(tiny_shards, tmp_path):
    handler = type("Cut", (_CuttingHandler,), {"seen": Counter(), "ranges": [], "always_cut": False})
    server, port = serve_in_thread(tiny_shards, handler)
    try:
        remote = MixtureStream(manifest_only(tiny_shards, tmp_path), "natural", batch_size=2, crop=32,
                               samples_per_epoch=40, url_prefix=f"http://127.0.0.1:{port}", retry=FAST_RETRY)
        local = MixtureStream(tiny_shards, "natural", batch_size=2, crop=32, samples_per_epoch=40)
        with pytest.warns(ShardRetryWarning):
            got = list(remote)
        want = list(local)
        assert [b["key"] for b in got] == [b["key"] for b in want] and remote.skipped_shards == 0
        assert all(b1["lq"].equal(b2["lq"]) for b1, b2 in zip(got, want, strict=True))
        assert handler.ranges and all(r.startswith("bytes=") and r != "bytes=0-" for r in handler.ranges)
    finally:
        server.shutdown()


def test_a_server_that_keeps_failing_gives_up_naming_the_shard(tiny_shards, tmp_path):
    from anyir.data.reader import ShardReader
    from anyir.data.shardset import ShardSet

    handler = type("AlwaysCut", (_CuttingHandler,), {"seen": Counter(), "ranges": [], "always_cut": True})
    server, port = serve_in_thread(tiny_shards, handler)
    try:
        shards = ShardSet.open(manifest_only(tiny_shards, tmp_path), f"http://127.0.0.1:{port}")
        ref = shards.refs("train", "dehaze")[0]
        with pytest.warns(ShardRetryWarning), pytest.raises(ShardUnavailable, match="dehaze/train-000000.tar"):
            ShardReader(retry=FAST_RETRY).shard(ref)
        assert handler.seen[f"/{ref.path}"] == FAST_RETRY.attempts
    finally:
        server.shutdown()


def test_a_swapped_shard_on_the_server_is_detected(tiny_shards, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(tiny_shards, served)
    shutil.copy(served / "dehaze/train-000000.tar", served / "deblur/train-000000.tar")
    server, port = serve_in_thread(served, http.server.SimpleHTTPRequestHandler)
    try:
        s = MixtureStream(manifest_only(tiny_shards, tmp_path), {"deblur": 1, "derain": 1}, batch_size=2, crop=32,
                          samples_per_epoch=8, url_prefix=f"http://127.0.0.1:{port}/{{path}}", retry=FAST_RETRY)
        with pytest.warns(ShardSkippedWarning, match="deblur/train-000000.tar"), \
                pytest.raises(RuntimeError, match="no readable sample left"):
            list(s)
    finally:
        server.shutdown()
