"""The ZeroMQ inference server over real sockets on loopback: round trips, faults, fuzzing, CURVE."""

import random
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from policy.base import BasePolicy
from ros_nodes.services import PolicyService
from ros_nodes.zmq_client import InferenceClient, RemotePolicy, ServerError, ServerTimeout
from ros_nodes.zmq_protocol import ProtocolError, decode, encode
from ros_nodes.zmq_server import InferenceServer, ServerConfig
from tests.ros_nodes.conftest import restartable_endpoint


class MeanColourPolicy(BasePolicy):
    """A deterministic stand-in model: a one-action chunk, a function of the image and instruction."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[int] = []

    def predict_chunk(self, observations, instructions):
        if len({o["agentview"].shape for o in observations}) > 1:
            raise ValueError("mixed image sizes in one batch")
        self.batches.append(len(observations))
        if self.delay:
            time.sleep(self.delay)
        out = []
        for obs, text in zip(observations, instructions):
            mean = obs["agentview"].reshape(-1, 3).mean(0) / 255.0
            out.append(np.array([[*mean, len(text), 0, 0, 1]], dtype=np.float32))
        return np.stack(out)


def remote_chunk(client, img, text, timeout_ms=None):
    """One robot's predict through the client-side policy: the chunk ``[K, 7]`` it plays."""
    return RemotePolicy(client, timeout_ms).predict_chunk([{"agentview": img}], [text])[0]


def _server(policy, **cfg):
    return InferenceServer([PolicyService(policy)], ServerConfig(endpoint="tcp://127.0.0.1:*", **cfg)).start()


def test_predict_round_trip_matches_in_process_call():
    policy = MeanColourPolicy()
    with _server(policy) as server, InferenceClient(server.endpoint, timeout_ms=2000) as client:
        img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        remote = RemotePolicy(client).predict_chunk([{"agentview": img}] * 2, ["pick up the red cube", "go"])
        local = policy.predict_chunk([{"agentview": img}] * 2, ["pick up the red cube", "go"])
        assert remote.shape == (2, 1, 7)
        np.testing.assert_array_equal(remote, local)
        health = client.health()
        assert health["status"] == "serving" and health["served"] == 2 and "predict" in health["ops"]


class ChunkPolicy(BasePolicy):
    """Chunks of 4 actions numbered 0..3, executed 2 at a time (a checkpoint with replan=2)."""

    def predict_chunk(self, observations, instructions):
        return np.stack([np.arange(4 * 7, dtype=np.float32).reshape(4, 7)] * len(observations))

    def describe(self):
        return {"chunk": 4, "replan": 2}


def test_server_sends_only_the_actions_a_local_policy_would_play():
    with _server(ChunkPolicy()) as server, InferenceClient(server.endpoint, timeout_ms=2000) as client:
        chunk = remote_chunk(client, np.zeros((8, 8, 3), np.uint8), "go")
        info = client.info()["services"]["predict"]
    assert chunk.shape == (2, 7)
    np.testing.assert_array_equal(chunk, np.arange(14, dtype=np.float32).reshape(2, 7))
    assert info == {"chunk": 4, "replan": 2}
    # The robot's executor plays all it got, then asks again: a local executor's order exactly.
    from policy.executor import ChunkExecutor

    with _server(ChunkPolicy()) as server, InferenceClient(server.endpoint, timeout_ms=2000) as client:
        remote = ChunkExecutor(RemotePolicy(client))
        played = [remote.act([{"agentview": np.zeros((8, 8, 3), np.uint8)}], ["go"])[0] for _ in range(3)]
    local = ChunkExecutor(ChunkPolicy())
    expected = [local.act([{"agentview": np.zeros((8, 8, 3), np.uint8)}], ["go"])[0] for _ in range(3)]
    np.testing.assert_array_equal(played, expected)
    np.testing.assert_array_equal(np.array(played)[:, 0], [0, 7, 0])


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
                results.append(remote_chunk(c, img, "go"))

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
                remote_chunk(c, img, "go")
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
        t = threading.Thread(target=lambda: remote_chunk(InferenceClient(server.endpoint, timeout_ms=5000), img, "go"))
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
            remote_chunk(c, np.zeros((4, 4, 3), np.uint8), "  ")
        with pytest.raises(ServerError, match="uint8"):
            remote_chunk(c, np.zeros((4, 4, 3), np.float32), "go")
        with pytest.raises(ServerError, match="exceeds"):
            remote_chunk(c, np.zeros((2600, 2600, 3), np.uint8), "go", timeout_ms=5000)
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
            assert remote_chunk(c, img, "still there?").shape == (1, 7)


def test_client_timeout_is_applied_and_reconnects_when_server_returns():
    endpoint = restartable_endpoint()  # nothing listens there yet
    img = np.zeros((8, 8, 3), np.uint8)
    with InferenceClient(endpoint, timeout_ms=200) as c:
        with pytest.raises(ServerTimeout):
            remote_chunk(c, img, "anyone?")
        server = InferenceServer([PolicyService(MeanColourPolicy())], ServerConfig(endpoint=endpoint)).start()
        try:
            for _ in range(20):  # the client reconnects on its own; allow the TCP handshake
                try:
                    action = remote_chunk(c, img, "back?", timeout_ms=500)
                    break
                except ServerTimeout:
                    continue
            assert action.shape == (1, 7)
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
            assert remote_chunk(good, img, "go").shape == (1, 7)
        with InferenceClient(server.endpoint, timeout_ms=500, server_public_key=str(server_public),
                             client_key=str(stranger_secret)) as stranger:
            with pytest.raises(ServerTimeout):
                remote_chunk(stranger, img, "go")
        with InferenceClient(server.endpoint, timeout_ms=500) as plain:
            with pytest.raises(ServerTimeout):
                remote_chunk(plain, img, "go")


def test_client_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, ros_nodes.zmq_client; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_bad_endpoints_and_busy_ports_are_user_errors():
    from common.errors import is_user_error
    from ros_nodes.errors import ServeError

    for bad in ("garbage", "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "udp://x:1"):
        with pytest.raises(ServeError, match="bad endpoint"):
            ServerConfig(endpoint=bad)
    with pytest.raises(ServeError, match="max_batch"):
        ServerConfig(max_batch=0)
    ServerConfig(endpoint="tcp://[::1]:5555")
    ServerConfig(endpoint="ipc:///tmp/embodied.sock")
    with _server(MeanColourPolicy()) as server:
        threads = threading.active_count()
        with pytest.raises(ServeError, match="in use") as exc:
            InferenceServer([PolicyService(MeanColourPolicy())], ServerConfig(endpoint=server.endpoint)).start()
        assert is_user_error(exc.value)
        assert threading.active_count() == threads  # the failed server left no thread behind
        with InferenceClient(server.endpoint, timeout_ms=2000) as c:  # the first one still serves
            assert remote_chunk(c, np.zeros((4, 4, 3), np.uint8), "go").shape == (1, 7)


CKPT = __import__("pathlib").Path(__file__).resolve().parents[2] / "checkpoints" / "vla-default"


@pytest.mark.skipif(not CKPT.is_dir(), reason="no shipped checkpoint")
def test_remote_checkpoint_plays_the_same_actions_as_a_local_one():
    from policy.executor import ChunkExecutor
    from policy.predict import Policy

    policy = Policy.from_pretrained(CKPT)
    spec = policy.describe()
    assert 1 <= spec["replan"] < spec["chunk"]  # the shipped checkpoint replans mid-chunk
    rng = np.random.default_rng(0)
    size = spec["image_size"]
    steps = [{**{c: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for c in spec["cameras"]},
              "state": rng.standard_normal(policy.cfg.state_dim).astype(np.float32)} for _ in range(7)]
    local = ChunkExecutor(policy)
    expected = [local.act([o], ["pick up the red cube"])[0] for o in steps]
    with _server(policy) as server, InferenceClient(server.endpoint, timeout_ms=10000) as client:
        remote = ChunkExecutor(RemotePolicy(client))
        played = [remote.act([o], ["pick up the red cube"])[0] for o in steps]
    np.testing.assert_array_equal(np.array(played), np.array(expected))


class BeliefColourPolicy(MeanColourPolicy):
    """``MeanColourPolicy`` with a distribution: 4 bins per dimension, the first twice as likely."""

    def predict_chunk_distribution(self, observations, instructions):
        from policy.base import ChunkDistribution

        actions = self.predict_chunk(observations, instructions)
        p = np.array([0.4, 0.2, 0.2, 0.2])
        log_probs = np.tile(np.log(p), (*actions.shape, 1)).astype(np.float32)
        return ChunkDistribution(actions, log_probs, np.tile(np.arange(4, dtype=np.float32), (7, 1)))

    def describe(self):
        return {"distribution": True}


def test_the_distribution_behind_a_chunk_crosses_the_wire_for_the_guided_blend():
    policy = BeliefColourPolicy()
    img = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    with _server(policy) as server, InferenceClient(server.endpoint, timeout_ms=2000) as client:
        remote = RemotePolicy(client, distribution=True)
        assert remote.describe()["distribution"] and not RemotePolicy(client).describe().get("distribution")
        got = remote.predict_chunk_distribution([{"agentview": img}] * 2, ["go", "pick"])
        want = policy.predict_chunk_distribution([{"agentview": img}] * 2, ["go", "pick"])
        np.testing.assert_array_equal(got.actions, want.actions)
        np.testing.assert_array_equal(got.log_probs, want.log_probs)
        np.testing.assert_array_equal(got.values, want.values)
        # plain requests in the same server still get actions only
        np.testing.assert_array_equal(remote.predict_chunk([{"agentview": img}], ["go"]), want.actions[:1])
    # a server whose policy has no distribution refuses in one line, and keeps serving
    with _server(MeanColourPolicy()) as server, InferenceClient(server.endpoint, timeout_ms=2000) as client:
        with pytest.raises(ServerError, match="no distribution"):
            RemotePolicy(client, distribution=True).predict_chunk_distribution([{"agentview": img}], ["go"])
        assert remote_chunk(client, img, "go").shape == (1, 7)
