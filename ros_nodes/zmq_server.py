"""The ZeroMQ inference server: a GPU box serves policies and video QA to edge robots.

One ROUTER socket; an I/O thread that only receives, validates, answers health checks and sends
replies, and a worker thread that batches requests of the same operation across clients and runs
the models. Inference therefore never blocks the receive loop (openpi #717): a health check is
answered while a batch is running, and requests whose deadline has passed are refused without being
run. Sizes are capped twice: ``MAXMSGSIZE`` drops absurd messages at the socket, and a softer
per-request limit answers with an error reply.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq

from ros_nodes.errors import ServeError
from ros_nodes.zmq_protocol import ProtocolError, decode, encode, error_reply

# tcp://HOST:PORT (PORT 1-65535, or * for any free port), ipc://PATH or inproc://NAME.
_TCP = re.compile(r"tcp://(?P<host>[^:/\s]+|\[[0-9a-fA-F:.]+\]):(?P<port>\*|\d+)")
_OTHER = re.compile(r"(ipc|inproc)://\S+")


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` if a server can bind it, else a ``ServeError`` saying what a good one looks like."""
    tcp = _TCP.fullmatch(endpoint)
    if tcp is None and _OTHER.fullmatch(endpoint) is None:
        raise ServeError(f"bad endpoint {endpoint!r}: use tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555), "
                         "ipc://PATH or inproc://NAME")
    if tcp is not None and tcp["port"] != "*" and not 1 <= int(tcp["port"]) <= 65535:
        raise ServeError(f"bad endpoint {endpoint!r}: the port must be 1-65535 (or * for any free port)")
    return endpoint


@dataclass
class ServerConfig:
    endpoint: str = "tcp://127.0.0.1:5555"  # loopback by default: expose it on purpose, not by accident
    max_batch: int = 8  # requests of one op run together; 8 robots per GPU forward is plenty here
    batch_wait_ms: float = 2.0  # how long the worker waits for more requests to fill a batch
    max_request_bytes: int = 16 * 1024 * 1024  # larger requests get an error reply
    hard_limit_bytes: int = 64 * 1024 * 1024  # ZMQ_MAXMSGSIZE: the socket drops anything larger
    max_queue: int = 256  # beyond this the server answers "busy" instead of queueing without bound
    default_deadline_ms: float = 1000.0  # used when a request names no deadline
    curve_secret_key: str | None = None  # server key file (zmq.auth certificate); enables CURVE
    curve_authorized_dir: str | None = None  # directory of client public keys allowed to connect

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint)
        if self.max_batch < 1:
            raise ServeError(f"max_batch (--max-batch) must be at least 1, got {self.max_batch}")
        if self.max_queue < 1:
            raise ServeError(f"max_queue must be at least 1, got {self.max_queue}")


class Service(Protocol):
    """Something that answers one or more operations, a batch at a time."""

    ops: tuple[str, ...]

    def info(self) -> dict[str, Any]: ...

    def run_batch(self, op: str, requests: list["Request"]) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """One (header, arrays) reply per request, in order. Raise ValueError for a bad request."""
        ...


@dataclass
class Request:
    route: list[bytes]  # ROUTER identity (+ empty delimiter for REQ peers)
    id: Any
    op: str
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]
    deadline: float  # time.monotonic() after which the answer is useless
    received: float = field(default_factory=time.monotonic)


class InferenceServer:
    def __init__(self, services: list[Service], config: ServerConfig | None = None,
                 context: zmq.Context | None = None) -> None:
        self.config = config or ServerConfig()
        self.ctx = context or zmq.Context.instance()
        self.services: dict[str, Service] = {}
        for service in services:
            for op in service.ops:
                if op in ("health", "info"):
                    raise ValueError(f"op name {op!r} is reserved")
                self.services[op] = service
        self._queue: queue.Queue[Request] = queue.Queue(maxsize=self.config.max_queue)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._auth = None
        self._bind_error: str | None = None
        self.started = time.monotonic()
        self.served = 0
        self.errors = 0
        self.endpoint = self.config.endpoint  # the bound endpoint (resolved port when ":0"/"*")

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "InferenceServer":
        """Bind and start the I/O and worker threads; returns once the socket is bound."""
        self._inproc = f"inproc://replies-{id(self)}"
        io = threading.Thread(target=self._io_loop, name="zmq-io", daemon=True)
        worker = threading.Thread(target=self._worker_loop, name="zmq-worker", daemon=True)
        self._threads = [io, worker]
        io.start()
        if not self._ready.wait(10.0) or self._bind_error:
            error = self._bind_error or "timed out"
            self._threads = [io]  # the worker never started
            self.stop()
            raise ServeError(f"cannot serve on {self.config.endpoint}: {error}")
        worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5.0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self) -> "InferenceServer":
        return self if self._threads else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- I/O thread: never runs a model --------------------------------------------------------
    def _make_socket(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, self.config.hard_limit_bytes)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
            if self.config.curve_secret_key:
                self._enable_curve(sock)
            sock.bind(self.config.endpoint)
        except Exception:
            sock.close(linger=0)
            raise
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return sock

    def _enable_curve(self, sock: zmq.Socket) -> None:
        from zmq.auth import CURVE_ALLOW_ANY, load_certificate
        from zmq.auth.thread import ThreadAuthenticator

        public, secret = load_certificate(self.config.curve_secret_key)
        if secret is None:
            raise ValueError(f"{self.config.curve_secret_key} holds no secret key")
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        if self.config.curve_authorized_dir:
            self._auth.configure_curve(domain="*", location=str(Path(self.config.curve_authorized_dir)))
        else:
            self._auth.configure_curve(domain="*", location=CURVE_ALLOW_ANY)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    def _io_loop(self) -> None:
        self._bind_error = None
        try:
            sock = self._make_socket()
        except Exception as exc:  # noqa: BLE001 - reported to start()
            self._bind_error = str(exc)
            self._ready.set()
            return
        replies = self.ctx.socket(zmq.PULL)
        replies.bind(self._inproc)
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(replies, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                for s, _ in poller.poll(50):
                    if s is replies:
                        sock.send_multipart(replies.recv_multipart(copy=False), copy=False)
                    else:
                        self._on_message(sock, sock.recv_multipart(copy=False))
        finally:
            sock.close(linger=0)
            replies.close(linger=0)

    def _on_message(self, sock: zmq.Socket, frames: list[zmq.Frame]) -> None:
        route = [frames[0].bytes]
        body = frames[1:]
        if body and len(body[0]) == 0:  # REQ peers put an empty delimiter before the payload
            route.append(b"")
            body = body[1:]
        try:
            head, arrays = decode([f.buffer for f in body], self.config.max_request_bytes)
        except ProtocolError as exc:
            self.errors += 1
            sock.send_multipart(route + error_reply(None, str(exc)), copy=False)
            return
        rid, op = head.get("id"), head.get("op")
        if op in ("health", "info"):
            sock.send_multipart(route + encode({"id": rid, "ok": True, **self._status(op == "info")}))
            return
        if op not in self.services:
            self.errors += 1
            known = ", ".join(sorted(["health", "info", *self.services]))
            sock.send_multipart(route + error_reply(rid, f"unknown op {op!r}; this server answers: {known}",
                                                    "unknown_op"))
            return
        budget = head.get("deadline_ms", self.config.default_deadline_ms)
        if not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0:
            sock.send_multipart(route + error_reply(rid, "deadline_ms must be a positive number"))
            return
        now = time.monotonic()
        request = Request(route, rid, op, head, arrays, now + budget / 1000.0, now)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            sock.send_multipart(route + error_reply(rid, "server busy: request queue is full", "busy"))

    def _status(self, full: bool) -> dict[str, Any]:
        status: dict[str, Any] = {
            "status": "serving",
            "uptime_s": round(time.monotonic() - self.started, 3),
            "queued": self._queue.qsize(),
            "served": self.served,
            "errors": self.errors,
            "ops": sorted(self.services),
        }
        if full:
            status["services"] = {op: svc.info() for op, svc in self.services.items()}
            status["max_request_bytes"] = self.config.max_request_bytes
        return status

    # -- worker thread: batches and runs the models --------------------------------------------
    def _worker_loop(self) -> None:
        out = self.ctx.socket(zmq.PUSH)
        out.connect(self._inproc)
        try:
            while not self._stop.is_set():
                batch = self._next_batch()
                if batch:
                    self._run(batch, out)
        finally:
            out.close(linger=100)

    def _next_batch(self) -> list[Request]:
        try:
            first = self._queue.get(timeout=0.05)
        except queue.Empty:
            return []
        batch = [first]
        until = time.monotonic() + self.config.batch_wait_ms / 1000.0
        while len(batch) < self.config.max_batch:
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _run(self, batch: list[Request], out: zmq.Socket) -> None:
        now = time.monotonic()
        by_op: dict[str, list[Request]] = {}
        for req in batch:
            if req.deadline < now:
                self.errors += 1
                out.send_multipart(req.route + error_reply(req.id, "deadline exceeded before inference",
                                                           "deadline"))
            else:
                by_op.setdefault(req.op, []).append(req)
        for op, reqs in by_op.items():
            try:
                results = self.services[op].run_batch(op, reqs)
            except ValueError as exc:  # bad content in the batch: answer each on its own
                results = []
                for req in reqs:
                    try:
                        results.extend(self.services[op].run_batch(op, [req]))
                    except ValueError as one:
                        results.append(({"ok": False, "error": str(one), "code": "bad_request"}, {}))
                del exc
            except Exception as exc:  # noqa: BLE001 - a model failure must not kill the server
                results = [({"ok": False, "error": f"inference failed: {type(exc).__name__}: {exc}",
                             "code": "internal"}, {})] * len(reqs)
            done = time.monotonic()
            for req, (head, arrays) in zip(reqs, results):
                head = {"ok": True, **head, "id": req.id, "server_ms": round((done - req.received) * 1e3, 3),
                        "batch": len(reqs)}
                self.served += bool(head["ok"])
                self.errors += not head["ok"]
                out.send_multipart(req.route + encode(head, arrays), copy=False)
