"""The robot-side client of the inference server: numpy, pyzmq and msgpack only.

``InferenceClient`` speaks the wire protocol (any op); ``RemotePolicy`` puts a served policy behind
the one policy interface (``policy.base.BasePolicy``), so a robot plays remote chunks with the
same ``ChunkExecutor`` as local ones and takes the same actions.

Timeouts are applied to the socket and to every wait (GR00T's client stored a timeout it never
set, so a dead server hung the robot). When a reply does not come in time the socket is closed
and a fresh one connects, so a late reply to an abandoned request can never be mistaken for the
next answer (replies are also matched by request id). When the server is down, nothing is queued
(``IMMEDIATE``) and the socket keeps reconnecting on its own, so the robot resumes as soon as the
server is back.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any, Sequence

import numpy as np
import zmq

from policy.base import BasePolicy, ChunkDistribution, Observation
from ros_nodes.zmq_protocol import KeyFileError, ProtocolError, decode, encode, load_curve_key


class ServerTimeout(TimeoutError):
    """No reply within the deadline: the caller should stop the robot and retry later."""

    user_error = True


class ServerError(RuntimeError):
    """The server answered with an error (bad request, unknown op, deadline, busy, model failure)."""

    user_error = True

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class InferenceClient:
    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", timeout_ms: float = 500.0,
                 server_public_key: str | None = None, client_key: str | None = None,
                 max_reply_bytes: int = 64 * 1024 * 1024, context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_ms = float(timeout_ms)
        self.max_reply_bytes = max_reply_bytes
        self._curve = (server_public_key, client_key)
        self.ctx = context or zmq.Context.instance()
        self._ids = itertools.count()
        self._prefix = os.urandom(4).hex()
        self._sock: zmq.Socket | None = None
        # A ZeroMQ socket must not be used by two threads at once (libzmq aborts the process): the
        # policy node calls from its model thread and closes from another. ``close`` waits for the
        # call in flight, at most its timeout.
        self._lock = threading.Lock()
        self.reconnects = 0

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, max(1, int(self.timeout_ms)))
            sock.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_ms)))
            sock.setsockopt(zmq.IMMEDIATE, 1)  # do not queue requests for a peer that is not there
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_reply_bytes)
            server_key, client_key = self._curve
            if server_key:
                if not client_key:
                    sock.close(linger=0)
                    raise KeyFileError("CURVE needs a client key file as well as the server's public key")
                try:
                    server_public, _ = load_curve_key(server_key, secret=False)
                    public, secret = load_curve_key(client_key, secret=True)
                except KeyFileError:
                    sock.close(linger=0)
                    raise
                sock.curve_serverkey = server_public
                sock.curve_publickey = public
                sock.curve_secretkey = secret
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
            self.reconnects += 1

    def call(self, op: str, header: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None,
             timeout_ms: float | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Send one request and wait for its reply; raises ServerTimeout or ServerError."""
        with self._lock:
            return self._call(op, header, arrays, timeout_ms)

    def _call(self, op: str, header: dict[str, Any] | None, arrays: dict[str, np.ndarray] | None,
              timeout_ms: float | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        timeout = self.timeout_ms if timeout_ms is None else float(timeout_ms)
        rid = f"{self._prefix}-{next(self._ids)}"
        frames = encode({**(header or {}), "id": rid, "op": op, "deadline_ms": timeout}, arrays)
        sock = self._socket()
        deadline = time.monotonic() + timeout / 1000.0
        try:
            sock.send_multipart(frames, copy=False)
        except zmq.Again:
            # Nothing was queued (IMMEDIATE): keep the socket, which goes on reconnecting by itself.
            raise ServerTimeout(f"could not send to {self.endpoint} within {timeout:.0f} ms (server down?)") from None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(max(1, int(remaining * 1000)), zmq.POLLIN):
                self._reset()
                raise ServerTimeout(f"no reply from {self.endpoint} within {timeout:.0f} ms")
            try:
                reply = sock.recv_multipart(copy=False)
            except zmq.Again:
                continue
            try:
                head, out = decode([f.buffer for f in reply], self.max_reply_bytes)
            except ProtocolError as exc:
                raise ServerError(f"malformed reply: {exc}") from None
            if head.get("id") not in (rid, None):
                continue  # a late answer to an earlier request: drop it
            if not head.get("ok", False):
                raise ServerError(str(head.get("error", "unknown error")), head.get("code"))
            return head, out

    # -- conveniences --------------------------------------------------------------------------
    def health(self, timeout_ms: float | None = None) -> dict[str, Any]:
        return self.call("health", timeout_ms=timeout_ms)[0]

    def info(self, timeout_ms: float | None = None) -> dict[str, Any]:
        return self.call("info", timeout_ms=timeout_ms)[0]

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close(linger=0)
                self._sock = None

    def __enter__(self) -> "InferenceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemotePolicy(BasePolicy):
    """A policy served by `embodied serve`: ``predict_chunk`` is one ``predict`` request per robot.

    The server sends the actions a local run of the same checkpoint plays (it truncates each chunk
    to the checkpoint's ``replan``), so ``describe()`` names no ``replan``: the executor plays
    what arrives. It stays local on purpose: asking the server would block a robot whose server
    is not up yet, and the policy node must start anyway and recover when the server comes.
    A timeout raises ``ServerTimeout``; the caller stops the robot.

    ``distribution=True`` (for the executor's ``guided`` blend) promises ``describe()["distribution"]``
    without asking the server, for the same reason; a server whose policy has none answers the
    first call with an error, which stops the robot like any failed call.
    """

    def __init__(self, client: InferenceClient, timeout_ms: float | None = None,
                 distribution: bool = False) -> None:
        self.client = client
        self.timeout_ms = timeout_ms  # None: the client's own timeout
        self.distribution = bool(distribution)

    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        return np.stack([self._predict(o, t, False)["action"] for o, t in
                         zip(observations, instructions, strict=True)])

    def predict_chunk_distribution(self, observations: Sequence[Observation],
                                   instructions: Sequence[str]) -> ChunkDistribution:
        """``predict`` with ``distribution: true``: the server adds ``log_probs`` and ``values``."""
        outs = [self._predict(o, t, True) for o, t in zip(observations, instructions, strict=True)]
        try:
            return ChunkDistribution(np.stack([o["action"] for o in outs]),
                                     np.stack([np.asarray(o["log_probs"], np.float32) for o in outs]),
                                     np.asarray(outs[0]["values"], np.float32))
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"the server's distribution reply is malformed: {exc!r}") from None

    def _predict(self, obs: Observation, instruction: str, distribution: bool) -> dict[str, np.ndarray]:
        arrays = {f"image.{k}": np.asarray(v) for k, v in obs.items() if k != "state"}
        if "state" in obs:
            arrays["state"] = np.asarray(obs["state"], dtype=np.float32)
        header: dict[str, Any] = {"instruction": instruction}
        if distribution:
            header["distribution"] = True
        _, out = self.client.call("predict", header, arrays, self.timeout_ms)
        action = np.asarray(out["action"], dtype=np.float32)
        return {**out, "action": action[None] if action.ndim == 1 else action}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint": self.client.endpoint}
        if self.distribution:
            out["distribution"] = True
        return out

    def close(self) -> None:
        self.client.close()
