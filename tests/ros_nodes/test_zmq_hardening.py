"""Issue 22: a request can fail, but the inference server never stops serving.

Real ZeroMQ on 127.0.0.1, a tiny real checkpoint (``save_sim_checkpoint``: cameras agentview and
wrist at 32 px, a 15-d state) or numpy stand-ins. Every payload named in the issue is replayed;
after each, health and a valid predict (compared with a direct ``predict_chunk``) must be answered.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from common.errors import is_user_error
from policy.base import BasePolicy
from ros_nodes.errors import ServeError
from ros_nodes.services import PolicyService
from ros_nodes.zmq_client import InferenceClient, RemotePolicy, ServerError, ServerTimeout
from ros_nodes.zmq_protocol import KeyFileError, decode, encode
from ros_nodes.zmq_server import InferenceServer, ServerConfig

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTION = "touch the red cube"


def _policy_helpers():
    spec = importlib.util.spec_from_file_location("policy_helpers", ROOT / "tests" / "policy" / "policy_helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """The tiny sim checkpoint, loaded once; one torch thread as `embodied serve` uses on 2 cores."""
    import torch

    from policy.predict import Policy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = _policy_helpers().save_sim_checkpoint(tmp_path_factory.mktemp("ckpt") / "sim")
    yield Policy.from_pretrained(path)
    torch.set_num_threads(threads)


def observation(seed: int = 0, state_shape=(15,)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"agentview": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            "wrist": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            "state": rng.standard_normal(state_shape).astype(np.float32)}


def predict_frames(obs: dict[str, np.ndarray], rid="r", **header) -> list:
    arrays = {(k if k == "state" else f"image.{k}"): v for k, v in obs.items()}
    return encode({"id": rid, "op": "predict", "instruction": INSTRUCTION, "deadline_ms": 5000, **header}, arrays)


def serve(service_or_policy, **cfg) -> InferenceServer:
    service = service_or_policy if hasattr(service_or_policy, "ops") else PolicyService(service_or_policy)
    return InferenceServer([service], ServerConfig(endpoint="tcp://127.0.0.1:*", **cfg)).start()


def dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def reply(sock: zmq.Socket, timeout_ms: int = 5000) -> tuple[dict, dict]:
    assert sock.poll(timeout_ms), "no reply"
    return decode(sock.recv_multipart(), 1 << 26)


def assert_serving(server: InferenceServer, policy=None) -> None:
    """Health says serving with a live worker, and a valid predict gets the direct call's action."""
    with InferenceClient(server.endpoint, timeout_ms=10000) as client:
        health = client.health()
        assert health["status"] == "serving" and health["workers"]["inference"] == "alive", health
        if policy is not None:
            obs = observation(7)
            got = RemotePolicy(client).predict_chunk([obs], [INSTRUCTION])[0]
            want = policy.predict_chunk([obs], [INSTRUCTION])[0][:policy.describe()["replan"]]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# -- issue 22, item 1: the payloads that killed the I/O thread --------------------------------------
ISSUE_PAYLOADS = {
    "op is a list": [msgpack.packb({"v": 1, "op": [1]})],
    "op is a map": [msgpack.packb({"v": 1, "op": {"a": 1}})],
    "dtype is a list": [msgpack.packb({"v": 1, "op": "predict", "id": 1,
                                       "arrays": [{"name": "state", "dtype": ["float32"], "shape": [15]}]}),
                        b"\0" * 60],
    "dtype is a map": [msgpack.packb({"v": 1, "op": "predict", "id": 2,
                                      "arrays": [{"name": "state", "dtype": {"f": 4}, "shape": [15]}]}),
                       b"\0" * 60],
    "shape [2**32, 2**32] wraps to 0": [msgpack.packb({"v": 1, "op": "predict", "id": 3, "arrays": [
        {"name": "image.agentview", "dtype": "uint8", "shape": [2**32, 2**32]}]}), b""],
    "shape [2**62, 4] wraps to 0": [msgpack.packb({"v": 1, "op": "predict", "id": 4, "arrays": [
        {"name": "image.agentview", "dtype": "uint8", "shape": [2**62, 4]}]}), b""],
    "shape [2**64 - 1]": [msgpack.packb({"v": 1, "op": "predict", "id": 5, "arrays": [
        {"name": "state", "dtype": "float32", "shape": [2**64 - 1]}]}), b""],
    "shape [0, 2**62]": [msgpack.packb({"v": 1, "op": "predict", "id": 6, "arrays": [
        {"name": "state", "dtype": "float32", "shape": [0, 2**62]}]}), b""],
}


@pytest.mark.parametrize("name", list(ISSUE_PAYLOADS))
def test_issue_payloads_get_an_error_reply_and_the_server_keeps_serving(tiny_policy, name):
    with serve(tiny_policy) as server:
        sock = dealer(server.endpoint)
        for _ in range(3):  # the same payload again: still answered
            sock.send_multipart(ISSUE_PAYLOADS[name])
            head, _ = reply(sock)
            assert head["ok"] is False and head["code"] == "bad_request" and head["error"], head
        sock.close()
        assert_serving(server, tiny_policy)
        assert server.worker_restarts == 0 and server.io_error is None


def test_mixed_state_shapes_in_one_batch_answer_each_on_its_own(tiny_policy):
    """(15,) and (1, 15) sent together within one batch window: the good one gets the direct
    call's action, the bad one an error reply, health stays truthful, nothing dies."""
    good, bad = observation(1), observation(2, state_shape=(1, 15))
    with serve(tiny_policy, batch_wait_ms=300) as server:
        a, b = dealer(server.endpoint), dealer(server.endpoint)
        a.send_multipart(predict_frames(good, "good"))
        b.send_multipart(predict_frames(bad, "bad"))
        head_a, out_a = reply(a)
        head_b, _ = reply(b)
        assert head_a["ok"] is True and head_a["id"] == "good"
        want = tiny_policy.predict_chunk([good], [INSTRUCTION])[0]
        np.testing.assert_allclose(out_a["action"], want, rtol=1e-5, atol=1e-6)
        assert head_b["ok"] is False and head_b["id"] == "bad" and "state" in head_b["error"]
        assert "[15]" in head_b["error"] and "[1, 15]" in head_b["error"]
        # Two good ones in the same window share one batch and each gets its own action.
        a.send_multipart(predict_frames(good, "g1"))
        b.send_multipart(predict_frames(observation(3), "g2"))
        (h1, o1), (h2, o2) = reply(a), reply(b)
        assert h1["batch"] == h2["batch"] == 2
        want = tiny_policy.predict_chunk([good, observation(3)], [INSTRUCTION] * 2)
        np.testing.assert_allclose(np.stack([o1["action"], o2["action"]]), want, rtol=1e-5, atol=1e-6)
        a.close()
        b.close()
        assert_serving(server, tiny_policy)
        with InferenceClient(server.endpoint, timeout_ms=5000) as client:
            health = client.health()
        assert health["served"] >= 3 and health["errors"] >= 1 and health["workers"]["restarts"] == 0


@pytest.mark.parametrize("mutate, words", [
    (lambda o: o.update(state=np.full(15, np.nan, np.float32)), ["NaN or infinite"]),
    (lambda o: o["state"].__setitem__(3, np.inf), ["NaN or infinite"]),
    (lambda o: o.update(state=np.zeros(14, np.float32)), ["[15]", "[14]"]),
    (lambda o: o.update(state=np.zeros(15, bool)), ["numeric"]),
    (lambda o: o.pop("state"), ["proprioception"]),
    (lambda o: o.pop("wrist"), ["cameras", "wrist"]),
    (lambda o: o.update(left=o.pop("wrist")), ["cameras", "left"]),
    (lambda o: o.update(wrist=np.zeros((64, 64, 3), np.uint8)), ["[32, 32, 3]"]),
    (lambda o: o.update(wrist=np.zeros((32, 32, 3), np.float32)), ["uint8"]),
    (lambda o: o.update(wrist=np.zeros((32, 32), np.uint8)), ["uint8"]),
])
def test_requests_are_checked_against_the_checkpoint_before_batching(tiny_policy, mutate, words):
    obs = observation(4)
    mutate(obs)
    with serve(tiny_policy) as server:
        sock = dealer(server.endpoint)
        sock.send_multipart(predict_frames(obs, "x"))
        head, _ = reply(sock)
        sock.close()
        assert head["ok"] is False and head["code"] == "bad_request" and head["id"] == "x"
        for word in words:
            assert word in head["error"], head["error"]
        assert server._queue.requests == 0  # refused before it was queued
        assert_serving(server, tiny_policy)


@pytest.mark.parametrize("header, words", [
    ({"instruction": 5}, ["instruction"]),
    ({"instruction": ["go"]}, ["instruction"]),
    ({"deadline_ms": "soon"}, ["deadline_ms"]),
    ({"deadline_ms": float("nan")}, ["deadline_ms"]),
    ({"deadline_ms": True}, ["deadline_ms"]),
    ({"id": ["a", "list"]}, ["'id'"]),
    ({"id": {"k": 1}}, ["'id'"]),
    ({"v": True}, ["version"]),
    ({"v": "1"}, ["version"]),
    ({"op": None}, ["'op'"]),
    ({"op": 3.5}, ["'op'"]),
])
def test_header_values_of_the_wrong_type_get_error_replies(tiny_policy, header, words):
    with serve(tiny_policy) as server:
        sock = dealer(server.endpoint)
        frames = predict_frames(observation(5), "h")
        head = msgpack.unpackb(frames[0])
        head.update(header)
        sock.send_multipart([msgpack.packb(head), *frames[1:]])
        got, _ = reply(sock)
        sock.close()
        assert got["ok"] is False, got
        for word in words:
            assert word in got["error"], got["error"]
        assert_serving(server, tiny_policy)


class RecordingPolicy(BasePolicy):
    """Numpy: one-action chunks from the image mean; raises on a batch holding ``poison`` (a
    ValueError) or ``boom`` (a RuntimeError), and on any batch of mixed image shapes."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def predict_chunk(self, observations, instructions):
        self.batches.append(list(instructions))
        if len({o["agentview"].shape for o in observations}) > 1:
            raise ValueError("mixed image sizes in one batch")
        if "poison" in instructions:
            raise ValueError("poisoned instruction")
        if "boom" in instructions:
            raise RuntimeError("the model crashed")
        return np.stack([np.full((1, 7), o["agentview"].mean(), np.float32) for o in observations])


def _send_together(server, items, wait=1.0):
    """Each (image, instruction) from its own socket at once; the replies' headers in order."""
    socks = [dealer(server.endpoint) for _ in items]
    for i, (sock, (img, text)) in enumerate(zip(socks, items)):
        sock.send_multipart(encode({"id": i, "op": "predict", "instruction": text, "deadline_ms": 5000},
                                   {"image.agentview": img}))
    out = [reply(s) for s in socks]
    for s in socks:
        s.close()
    return out


def test_a_failing_batch_is_retried_one_request_at_a_time():
    policy = RecordingPolicy()
    img = np.full((8, 8, 3), 10, np.uint8)
    with serve(policy, batch_wait_ms=300) as server:
        out = _send_together(server, [(img, "go"), (img, "poison"), (img, "boom"), (img, "left")])
        assert_serving(server)
    heads = [h for h, _ in out]
    assert [h["ok"] for h in heads] == [True, False, False, True]
    assert heads[1]["code"] == "bad_request" and "poisoned" in heads[1]["error"]
    assert heads[2]["code"] == "internal" and "RuntimeError" in heads[2]["error"]
    np.testing.assert_array_equal(out[0][1]["action"], np.full((1, 7), 10, np.float32))
    assert sorted(map(len, policy.batches)) == [1, 1, 1, 1, 4]  # the batch, then each alone


def test_only_compatible_requests_share_a_batch():
    policy = RecordingPolicy()
    small, large = np.full((8, 8, 3), 1, np.uint8), np.full((16, 16, 3), 2, np.uint8)
    with serve(policy, batch_wait_ms=300) as server:
        out = _send_together(server, [(small, "a"), (large, "b"), (small, "c"), (large, "d")])
    assert all(h["ok"] for h, _ in out)
    assert [o["action"][0, 0] for _, o in out] == [1, 2, 1, 2]
    assert sorted(map(sorted, policy.batches)) == [["a", "c"], ["b", "d"]]  # never a mixed batch


# -- the watchdog ---------------------------------------------------------------------------------
class DyingPolicy(BasePolicy):
    """Raises SystemExit (a BaseException, which ends a thread) on the instruction ``die``."""

    def predict_chunk(self, observations, instructions):
        if "die" in instructions:
            raise SystemExit("killed by the test")
        return np.zeros((len(observations), 1, 7), np.float32)


def _predict(client, text):
    return RemotePolicy(client).predict_chunk([{"agentview": np.zeros((8, 8, 3), np.uint8)}], [text])


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_watchdog_restarts_a_dead_worker_and_health_tells_the_truth():
    with serve(DyingPolicy()) as server, InferenceClient(server.endpoint, timeout_ms=5000) as client:
        with pytest.raises(ServerError, match="worker died") as exc:
            _predict(client, "die")
        assert exc.value.code == "internal"
        assert _wait(lambda: server.worker_restarts == 1)
        health = client.health()
        assert health["status"] == "serving" and health["workers"]["inference"] == "alive"
        assert health["workers"]["restarts"] == 1 and "SystemExit" in health["workers"]["last_error"]
        assert _predict(client, "go").shape == (1, 1, 7)  # the restarted worker serves
        assert not server.failed.is_set()


def test_watchdog_fails_the_server_when_the_worker_keeps_dying():
    with serve(DyingPolicy(), max_worker_restarts=1) as server, \
            InferenceClient(server.endpoint, timeout_ms=5000) as client:
        for _ in range(2):
            with pytest.raises(ServerError, match="worker died"):
                _predict(client, "die")
            _wait(lambda: server._worker.is_alive() or server.failed.is_set())
        assert server.failed.wait(5.0)
        assert "died 2 times" in server.failure
        health = client.health()
        assert health["status"] == "failed" and "died 2 times" in health["failure"]
        with pytest.raises(ServerError, match="server failed") as exc:
            _predict(client, "go")
        assert exc.value.code == "internal"


class KillsIOService(PolicyService):
    """``check`` runs on the I/O thread: a BaseException there ends that thread."""

    def check(self, req):
        if req.header.get("instruction") == "kill io":
            raise SystemExit("I/O killed by the test")
        return super().check(req)


def test_watchdog_fails_the_server_when_the_io_thread_dies():
    with serve(KillsIOService(DyingPolicy())) as server, InferenceClient(server.endpoint, timeout_ms=500) as client:
        assert _predict(client, "go").shape == (1, 1, 7)
        with pytest.raises(ServerTimeout):
            _predict(client, "kill io")
        assert server.failed.wait(5.0) and "I/O thread died" in server.failure and "SystemExit" in server.failure
        with pytest.raises(ServerTimeout):  # nothing answers any more: the CLI exits 1 for a supervisor
            client.health()


# -- CURVE and the command line -------------------------------------------------------------------
@pytest.fixture
def keys(tmp_path):
    import zmq.auth

    for d in ("server", "clients", "empty"):
        (tmp_path / d).mkdir()
    _, secret = zmq.auth.create_certificates(tmp_path / "server", "server")
    zmq.auth.create_certificates(tmp_path / "clients", "robot")
    (tmp_path / "clients" / "robot.key_secret").rename(tmp_path / "robot.key_secret")
    (tmp_path / "garbage.key").write_text("not a certificate\n")
    return tmp_path


def test_curve_without_an_allow_list_needs_encrypt_only(keys):
    secret = str(keys / "server" / "server.key_secret")
    with pytest.raises(ServeError, match="lets any client key in.*--curve-encrypt-only"):
        ServerConfig(endpoint="tcp://127.0.0.1:*", curve_secret_key=secret)
    cfg = ServerConfig(endpoint="tcp://127.0.0.1:*", curve_secret_key=secret, curve_encrypt_only=True)
    with InferenceServer([PolicyService(DyingPolicy())], cfg).start() as server, \
            InferenceClient(server.endpoint, timeout_ms=3000, server_public_key=str(keys / "server" / "server.key"),
                            client_key=str(keys / "robot.key_secret")) as client:
        assert _predict(client, "go").shape == (1, 1, 7)  # any key, but encrypted


@pytest.mark.parametrize("settings, words", [
    (dict(curve_secret_key="{k}/nope.key_secret", curve_authorized_dir="{k}/clients"), ["not found", "nope"]),
    (dict(curve_secret_key="{k}/server/server.key", curve_authorized_dir="{k}/clients"), ["no secret key"]),
    (dict(curve_secret_key="{k}/garbage.key", curve_authorized_dir="{k}/clients"), ["not a zmq certificate"]),
    (dict(curve_secret_key="{k}/server/server.key_secret", curve_authorized_dir="{k}/missing"), ["directory", "not found"]),
    (dict(curve_secret_key="{k}/server/server.key_secret", curve_authorized_dir="{k}/empty"), ["no client public keys"]),
    (dict(curve_authorized_dir="{k}/clients"), ["--curve-secret"]),
    (dict(curve_encrypt_only=True), ["--curve-secret"]),
])
def test_curve_setting_mistakes_are_one_line_user_errors(keys, settings, words):
    settings = {k: v.format(k=keys) if isinstance(v, str) else v for k, v in settings.items()}
    with pytest.raises((ServeError, KeyFileError)) as exc:
        ServerConfig(endpoint="tcp://127.0.0.1:*", **settings)
    assert is_user_error(exc.value) and "\n" not in str(exc.value)
    for word in words:
        assert word in str(exc.value)


def test_client_key_file_mistakes_are_user_errors(keys):
    client = InferenceClient("tcp://127.0.0.1:1", server_public_key=str(keys / "server" / "server.key"),
                             client_key=str(keys / "missing.key_secret"))
    with pytest.raises(KeyFileError, match="not found"):
        client.call("health")


def embodied(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("args, words", [
    (["--bind", "tcp://127.0.0.1:99999"], ["99999", "1-65535"]),
    (["--bind", "garbage"], ["garbage", "tcp://HOST:PORT"]),
    (["--max-batch", "0"], ["max_batch", "at least 1"]),
    (["--curve-secret", "/no/such.key_secret", "--curve-authorized", "/tmp"], ["/no/such.key_secret", "not found"]),
    (["--curve-secret", "{k}/server/server.key_secret"], ["--curve-encrypt-only"]),
    (["--curve-secret", "{k}/server/server.key_secret", "--curve-authorized", "/no/such/dir"], ["/no/such/dir"]),
    (["--curve-encrypt-only"], ["--curve-secret"]),
])
def test_serve_mistakes_exit_2_with_one_line(keys, args, words):
    args = [a.format(k=keys) for a in args]
    proc = embodied("serve", "--policy", "no/such/ckpt", *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_busy_port_is_a_one_line_serve_error():
    from ros_nodes.zmq_server import check_endpoint

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        before = threading.active_count()
        with pytest.raises(ServeError, match="in use") as exc:
            serve_config = ServerConfig(endpoint=check_endpoint(f"tcp://127.0.0.1:{port}"))
            InferenceServer([PolicyService(DyingPolicy())], serve_config).start()
        assert "\n" not in str(exc.value) and threading.active_count() == before
    finally:
        sock.close()


def test_client_closed_from_another_thread_mid_call_does_not_abort():
    """The policy node calls from its model thread and closes from another: libzmq aborts the whole
    process when two threads use one socket, so the client serialises them."""

    class Slow(DyingPolicy):
        def predict_chunk(self, observations, instructions):
            time.sleep(0.02)
            return super().predict_chunk(observations, instructions)

    with serve(Slow()) as server:
        client = InferenceClient(server.endpoint, timeout_ms=2000)
        stop = threading.Event()
        calls = []

        def loop():
            while not stop.is_set():
                calls.append(_predict(client, "go").shape)

        t = threading.Thread(target=loop)
        t.start()
        for _ in range(30):
            time.sleep(0.01)
            client.close()
        stop.set()
        t.join(5)
        client.close()
    assert not t.is_alive() and len(calls) >= 5 and set(calls) == {(1, 1, 7)}
