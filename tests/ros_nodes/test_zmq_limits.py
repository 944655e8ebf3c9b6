"""Ceilings of the inference server (issue 22): memory stays flat and polite clients are served.

The server runs in a subprocess (numpy policy, default ``ServerConfig``) so its resident memory
(``VmRSS``) is measured alone, not mixed with the test's own buffers. Two attacks:

- a flood: one client sends 1,500 requests of 196 KB as fast as it can, while a polite client asks
  10 times; the flood is answered ``busy`` beyond its per-client caps, the polite client is served;
- 8 slow partial connections (raw ZMTP over TCP): each declares the largest frame the socket takes
  and sends almost all of it, then stalls. The frame cap bounds what each can pin, and heartbeats
  drop the stalled peers.

Run ``python -m tests.ros_nodes.test_zmq_limits`` to start the same server by hand.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from policy.base import BasePolicy
from ros_nodes.zmq_client import InferenceClient, RemotePolicy
from ros_nodes.zmq_protocol import decode, encode

ROOT = Path(__file__).resolve().parents[2]
SIZE = 256  # the policy's image size: 196,608-byte frames
MB = 1024 * 1024


class SlowPolicy(BasePolicy):
    """20 ms per batch, like a small model on a busy GPU."""

    def predict_chunk(self, observations, instructions):
        time.sleep(0.02)
        return np.stack([np.full((1, 7), o["agentview"][0, 0, 0], np.float32) for o in observations])

    def describe(self):
        return {"cameras": ["agentview"], "image_size": SIZE, "use_state": False}


def _serve_forever() -> None:
    from ros_nodes.services import PolicyService
    from ros_nodes.zmq_server import InferenceServer, ServerConfig

    with InferenceServer([PolicyService(SlowPolicy())], ServerConfig(endpoint="tcp://127.0.0.1:*")) as server:
        print(server.endpoint, server.frame_limit, flush=True)
        sys.stdin.read()  # until the test closes our stdin


@pytest.fixture
def server():
    proc = subprocess.Popen([sys.executable, "-m", "tests.ros_nodes.test_zmq_limits"], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    endpoint, frame_limit = proc.stdout.readline().split()
    yield proc, endpoint, int(frame_limit)
    proc.stdin.close()
    proc.wait(timeout=20)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PeakRSS:
    """Samples a process's RSS every 20 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> "PeakRSS":
        self.peak = rss_mb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def image(value: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), value, np.uint8)


def polite_predicts(endpoint: str, n: int) -> list[float]:
    """``n`` sequential predicts; their latencies in ms (raises if any is refused or times out)."""
    times = []
    with InferenceClient(endpoint, timeout_ms=3000) as client:
        policy = RemotePolicy(client)
        for i in range(n):
            t0 = time.monotonic()
            action = policy.predict_chunk([{"agentview": image(i)}], ["polite"])
            times.append((time.monotonic() - t0) * 1e3)
            assert action[0, 0, 0] == i
    return times


def flood(endpoint: str, n: int, result: dict, timeout_s: float = 60.0) -> None:
    """Send ``n`` predicts without waiting, reading replies as they come; count them by outcome."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    frames = encode({"op": "predict", "instruction": "flood", "deadline_ms": 30000}, {"image.agentview": image(7)})
    sent = received = 0
    deadline = time.monotonic() + timeout_s
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN | zmq.POLLOUT)
    while received < n and time.monotonic() < deadline:
        events = dict(poller.poll(100)).get(sock, 0)
        if events & zmq.POLLOUT and sent < n:
            sock.send_multipart(frames, copy=False)
            sent += 1
        if events & zmq.POLLIN:
            head, _ = decode(sock.recv_multipart(), 1 << 26)
            key = "ok" if head["ok"] else head["code"]
            result[key] = result.get(key, 0) + 1
            received += 1
    result["sent"], result["received"] = sent, received
    sock.close()


def test_flood_from_one_client_keeps_memory_flat_and_a_polite_client_served(server):
    proc, endpoint, _ = server
    polite_predicts(endpoint, 20)  # warm up: allocator arenas, sockets
    before = rss_mb(proc.pid)
    result: dict = {}
    with PeakRSS(proc.pid) as peak:
        flooder = threading.Thread(target=flood, args=(endpoint, 1500, result))
        flooder.start()
        time.sleep(0.3)  # the flood is under way
        latencies = polite_predicts(endpoint, 10)
        flooder.join(90)
    after = rss_mb(proc.pid)
    print(f"\nflood: {result}; polite latencies ms: {[round(t) for t in latencies]}; "
          f"RSS before {before:.1f} MB, peak {peak.peak:.1f} MB, after {after:.1f} MB")
    assert len(latencies) == 10  # the polite client was answered every time during the flood
    assert result["received"] == result["sent"] == 1500
    assert result.get("busy", 0) > 0 and result.get("ok", 0) > 0  # refused beyond its caps, not starved
    assert peak.peak - before < 50 and after - before < 50


def zmtp_connect(endpoint: str) -> socket.socket:
    """A raw TCP peer that completes the ZMTP 3.1 NULL handshake as a DEALER (RFC 37)."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    greeting = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31
    s.sendall(greeting)
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    s.sendall(b"\x04" + bytes([len(body)]) + body)
    return s


def closed_by_peer(s: socket.socket, timeout_s: float) -> float | None:
    """Seconds until the server closed ``s`` (we read and ignore its greeting and pings), or None."""
    t0 = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - t0 < timeout_s:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def test_slow_partial_connections_cannot_pin_memory(server):
    proc, endpoint, frame_limit = server
    assert frame_limit == 4 * MB  # max(4 MiB, the policy's largest valid frame: 256x256x3)
    polite_predicts(endpoint, 20)
    before = rss_mb(proc.pid)
    conns = []
    with PeakRSS(proc.pid) as peak:
        for _ in range(8):
            s = zmtp_connect(endpoint)
            size = frame_limit - 16
            s.sendall(b"\x03" + struct.pack(">Q", size))  # a long frame, MORE: a multipart under way
            conns.append((s, size))
        for offset in range(0, frame_limit - MB, 256 * 1024):  # slowly: 256 KB per connection per step
            for s, _ in conns:
                s.sendall(b"\0" * 256 * 1024)
            time.sleep(0.02)
        pinned = rss_mb(proc.pid)
        t0 = time.monotonic()
        assert polite_predicts(endpoint, 3)  # served while 8 peers hold partial messages
        drops = [closed_by_peer(s, 15.0) for s, _ in conns]
        held_s = time.monotonic() - t0
    time.sleep(0.5)
    after = rss_mb(proc.pid)
    # A frame above the cap is refused at once: its connection is closed by the server.
    big = zmtp_connect(endpoint)
    big.sendall(b"\x02" + struct.pack(">Q", 64 * MB))
    big_drop = closed_by_peer(big, 5.0)
    for s, _ in conns:
        s.close()
    big.close()
    print(f"\n8 partial connections of {(frame_limit - MB) // MB} MB each: RSS before {before:.1f} MB, "
          f"while held {pinned:.1f} MB, peak {peak.peak:.1f} MB, after the server dropped them {after:.1f} MB; "
          f"all dropped by the server within {held_s:.1f} s of the stall; "
          f"a 64 MB frame dropped after {big_drop and round(big_drop, 2)} s")
    assert all(d is not None for d in drops)  # heartbeats: a peer stalled mid-frame is disconnected
    assert big_drop is not None and big_drop < 2.0
    assert peak.peak - before < 50 and after - before < 50


def test_request_and_byte_caps_answer_busy_per_client():
    """In-process: per-client caps refuse the flooder's surplus with ``busy``; others still get in."""
    from ros_nodes.services import PolicyService
    from ros_nodes.zmq_server import InferenceServer, ServerConfig

    class Stuck(SlowPolicy):
        def __init__(self):
            self.gate = threading.Event()

        def predict_chunk(self, observations, instructions):
            self.gate.wait(10)
            return super().predict_chunk(observations, instructions)

    policy = Stuck()
    cfg = ServerConfig(endpoint="tcp://127.0.0.1:*", max_client_requests=4, max_batch=1)
    with InferenceServer([PolicyService(policy)], cfg) as srv:
        rude = zmq.Context.instance().socket(zmq.DEALER)
        rude.setsockopt(zmq.LINGER, 0)
        rude.connect(srv.endpoint)
        frames = encode({"op": "predict", "instruction": "x", "deadline_ms": 30000}, {"image.agentview": image(1)})
        for _ in range(10):
            rude.send_multipart(frames)
        busy = []
        while len(busy) < 6 and rude.poll(3000):
            head, _ = decode(rude.recv_multipart(), 1 << 26)
            busy.append(head)
        assert len(busy) == 6 and all(h["code"] == "busy" and "4 requests in flight" in h["error"] for h in busy)
        with InferenceClient(srv.endpoint, timeout_ms=5000) as polite:
            assert polite.health()["in_flight"] == 4
            done = threading.Thread(target=lambda: polite_predicts(srv.endpoint, 1))
            done.start()
            time.sleep(0.2)
            policy.gate.set()
            done.join(10)
            assert not done.is_alive()
        rude.close()


if __name__ == "__main__":
    _serve_forever()
