"""The ZeroMQ inference server over real sockets on loopback: round trips, faults, fuzzing, CURVE."""

import random
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from ros_nodes.services import PolicyService
from ros_nodes.zmq_client import InferenceClient, ServerError, ServerTimeout
from ros_nodes.zmq_protocol import ProtocolError, decode, encode
from ros_nodes.zmq_server import InferenceServer, ServerConfig


class MeanColourPolicy:
    """A deterministic stand-in model: the action is a function of the image and instruction."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[int] = []

    def predict_batch(self, observations, instructions):
        if len({o["agentview"].shape for o in observations}) > 1:
            raise ValueError("mixed image sizes in one batch")
        self.batches.append(len(observations))
        if self.delay:
            time.sleep(self.delay)
        out = []
        for obs, text in zip(observations, instructions):
            mean = obs["agentview"].reshape(-1, 3).mean(0) / 255.0
            out.append(np.array([*mean, len(text), 0, 0, 1], dtype=np.float32))
        return np.stack(out)


def _server(policy, **cfg):
    return InferenceServer([PolicyService(policy)], ServerConfig(endpoint="tcp://127.0.0.1:*", **cfg)).start()


def test_predict_round_trip_matches_in_process_call():
    policy = MeanColourPolicy()
    with _server(policy) as server, InferenceClient(server.endpoint, timeout_ms=2000) as client:
        img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        remote = client.predict({"agentview": img}, "pick up the red cube")
        local = policy.predict_batch([{"agentview": img}], ["pick up the red cube"])[0]
        np.testing.assert_array_equal(remote, local)
        health = client.health()
        assert health["status"] == "serving" and health["served"] == 1 and "predict" in health["ops"]


class ChunkPolicy:
    """Chunks of 4 actions numbered 0..3, executed 2 at a time (a checkpoint with replan=2)."""

    replan = 2

    def predict_chunk_batch(self, observations, instructions):
        return np.stack([np.arange(4 * 7, dtype=np.float32).reshape(4, 7)] * len(observations))


def test_server_sends_only_the_actions_a_local_policy_would_play():
    with _server(ChunkPolicy()) as server, InferenceClient(server.endpoint, timeout_ms=2000) as client:
        chunk = client.predict({"agentview": np.zeros((8, 8, 3), np.uint8)}, "go")
    assert chunk.shape == (2, 7)
    np.testing.assert_array_equal(chunk, np.arange(14, dtype=np.float32).reshape(2, 7))


def test_protocol_round_trip_and_refuses_object_dtype():
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.zeros((0, 2), np.uint8)}
    head, out = decode(encode({"op": "x"}, arrays), max_bytes=1 << 20)
    assert head["op"] == "x"
    np.testing.assert_array_equal(out["a"], arrays["a"])
    assert out["b"].shape == (0, 2)
    with pytest.raises(ProtocolError):
        encode({}, {"o": np.array([object()], dtype=object)})


def test_dynamic_batching_across_clients():
    policy = MeanColourPolicy(delay=0.05)
    img = np.zeros((8, 8, 3), np.uint8)
    with _server(policy, batch_wait_ms=30) as server:
        results = []

        def ask():
            with InferenceClient(server.endpoint, timeout_ms=5000) as c:
                results.append(c.predict({"agentview": img}, "go"))

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 6
    assert max(policy.batches) > 1  # at least one batch served several clients in one call


def test_health_is_answered_while_inference_runs():
    policy = MeanColourPolicy(delay=1.0)
    img = np.zeros((8, 8, 3), np.uint8)
    with _server(policy) as server:
        order = []

        def slow():
            with InferenceClient(server.endpoint, timeout_ms=5000) as c:
                c.predict({"agentview": img}, "go")
                order.append("predict")

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.2)  # let the slow batch start
        with InferenceClient(server.endpoint, timeout_ms=5000) as c:
            assert c.health()["status"] == "serving"
            order.append("health")
        t.join()
    assert order == ["health", "predict"]


def test_expired_deadline_is_refused_without_running():
    policy = MeanColourPolicy(delay=0.5)
    img = np.zeros((8, 8, 3), np.uint8)
    with _server(policy, batch_wait_ms=0) as server:
        t = threading.Thread(target=lambda: InferenceClient(server.endpoint, timeout_ms=5000).predict(
            {"agentview": img}, "go"))
        t.start()
        time.sleep(0.1)
        with InferenceClient(server.endpoint, timeout_ms=3000) as c:
            with pytest.raises(ServerError) as exc:
                _raw_call(c, img, deadline_ms=50)  # queued behind a 0.5 s batch: expires first
        t.join()
    assert exc.value.code == "deadline"
    assert policy.batches == [1]


def _raw_call(client, img, deadline_ms):
    """Send a predict with a server-side deadline shorter than the client's own wait."""
    sock = client._socket()
    sock.send_multipart(encode({"id": "raw", "op": "predict", "instruction": "go", "deadline_ms": deadline_ms},
                               {"image.agentview": img}))
    assert sock.poll(3000)
    head, _ = decode(sock.recv_multipart(), 1 << 24)
    if not head["ok"]:
        raise ServerError(head["error"], head.get("code"))
    return head


def test_bad_requests_get_error_replies():
    with _server(MeanColourPolicy()) as server, InferenceClient(server.endpoint, timeout_ms=2000) as c:
        with pytest.raises(ServerError) as exc:
            c.call("fly")
        assert exc.value.code == "unknown_op" and "predict" in str(exc.value)
        with pytest.raises(ServerError, match="instruction"):
            c.predict({"agentview": np.zeros((4, 4, 3), np.uint8)}, "  ")
        with pytest.raises(ServerError, match="uint8"):
            c.predict({"agentview": np.zeros((4, 4, 3), np.float32)}, "go")
        with pytest.raises(ServerError, match="exceeds"):
            c.predict({"agentview": np.zeros((2600, 2600, 3), np.uint8)}, "go", timeout_ms=5000)
        assert c.health()["status"] == "serving"


def test_fuzz_thousand_random_payloads_server_keeps_serving():
    rng = random.Random(0)
    policy = MeanColourPolicy()
    img = np.zeros((8, 8, 3), np.uint8)
    with _server(policy, max_request_bytes=1 << 16) as server:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.endpoint)
        replies = 0
        for i in range(1000):
            kind = i % 5
            if kind == 0:
                frames = [rng.randbytes(rng.randint(1, 200)) for _ in range(rng.randint(1, 3))]
            elif kind == 1:
                frames = [msgpack.packb({"v": 1, "op": rng.choice(["predict", "zap", 3, None]),
                                         "arrays": [{"name": "image.agentview", "dtype": "uint8",
                                                     "shape": [rng.randint(0, 9)] * 3}]}),
                          rng.randbytes(rng.randint(0, 100))]
            elif kind == 2:
                frames = [msgpack.packb(rng.choice([[1, 2], "str", 7, {"v": 2}, {"v": 1, "arrays": 5}]))]
            elif kind == 3:
                frames = [msgpack.packb({"v": 1, "op": "predict", "id": i, "arrays": [
                    {"name": "x", "dtype": "object", "shape": [1]}]}), b"\x00" * 8]
            else:
                frames = [msgpack.packb({"v": 1, "op": "predict", "id": i, "instruction": 5,
                                         "deadline_ms": rng.choice([-1, "soon", 100])}), ]
            sock.send_multipart(frames)
            if sock.poll(2000):
                head = msgpack.unpackb(sock.recv_multipart()[0])
                assert head["ok"] is False and head["error"]
                replies += 1
        sock.close()
        assert replies == 1000
        with InferenceClient(server.endpoint, timeout_ms=2000) as c:
            assert c.predict({"agentview": img}, "still there?").shape == (7,)


def test_client_timeout_is_applied_and_reconnects_when_server_returns():
    ctx = zmq.Context.instance()
    probe = ctx.socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    endpoint = f"tcp://127.0.0.1:{port}"
    img = np.zeros((8, 8, 3), np.uint8)
    with InferenceClient(endpoint, timeout_ms=200) as c:
        with pytest.raises(ServerTimeout):
            c.predict({"agentview": img}, "anyone?")
        server = InferenceServer([PolicyService(MeanColourPolicy())], ServerConfig(endpoint=endpoint)).start()
        try:
            for _ in range(20):  # the client reconnects on its own; allow the TCP handshake
                try:
                    action = c.predict({"agentview": img}, "back?", timeout_ms=500)
                    break
                except ServerTimeout:
                    continue
            assert action.shape == (7,)
        finally:
            server.stop()


def test_curve_refuses_unauthenticated_clients(tmp_path):
    import zmq.auth

    server_dir, clients_dir, other_dir = tmp_path / "server", tmp_path / "clients", tmp_path / "other"
    for d in (server_dir, clients_dir, other_dir):
        d.mkdir()
    _, server_secret = zmq.auth.create_certificates(server_dir, "server")
    server_public = server_dir / "server.key"
    zmq.auth.create_certificates(clients_dir, "robot")
    _, stranger_secret = zmq.auth.create_certificates(other_dir, "stranger")
    (clients_dir / "robot.key_secret").rename(tmp_path / "robot.key_secret")
    img = np.zeros((8, 8, 3), np.uint8)
    cfg = ServerConfig(endpoint="tcp://127.0.0.1:*", curve_secret_key=str(server_secret),
                       curve_authorized_dir=str(clients_dir))
    with InferenceServer([PolicyService(MeanColourPolicy())], cfg).start() as server:
        with InferenceClient(server.endpoint, timeout_ms=3000, server_public_key=str(server_public),
                             client_key=str(tmp_path / "robot.key_secret")) as good:
            assert good.predict({"agentview": img}, "go").shape == (7,)
        with InferenceClient(server.endpoint, timeout_ms=500, server_public_key=str(server_public),
                             client_key=str(stranger_secret)) as stranger:
            with pytest.raises(ServerTimeout):
                stranger.predict({"agentview": img}, "go")
        with InferenceClient(server.endpoint, timeout_ms=500) as plain:
            with pytest.raises(ServerTimeout):
                plain.predict({"agentview": img}, "go")


def test_client_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, ros_nodes.zmq_client; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
