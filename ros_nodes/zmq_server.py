"""The ZeroMQ inference server: a GPU box serves policies and video QA to edge robots.

One ROUTER socket and three threads:

- the **I/O thread** only receives, validates, answers health checks and sends replies. It never
  runs a model, so a health check is answered while a batch runs (openpi #717). Every message is
  decoded and checked before it is queued (header types, dtypes, sizes, the service's own
  ``check``: image and state shapes against the checkpoint, finite values); any exception while
  handling one message becomes an error reply to that message alone and the loop goes on.
- the **inference worker** takes batches of *compatible* requests (same op, same shapes: the
  service's compatibility key) round-robin across clients and runs them. If a batch raises, each
  request is retried alone, and any exception there is that request's error reply.
- the **watchdog** notices a dead thread. See ``InferenceServer._watch`` for what it does.

Memory is bounded at three levels: the socket (``ZMQ_MAXMSGSIZE`` per frame, heartbeats that drop a
peer stalled in the middle of a frame, a small receive high-water mark), the queue (per-client and
global caps on requests and bytes in flight: a flooding client is answered ``busy`` while the
others are still served) and the request (``max_request_bytes``, answered with an error reply).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Protocol

import numpy as np
import zmq

from common.errors import UserError, is_user_error
from ros_nodes.errors import ServeError
from ros_nodes.zmq_protocol import (check_allow_list, decode, encode, error_reply, load_curve_key,
                                    request_fields, request_id)
from ros_nodes.zmq_queue import FairQueue, Limits

log = logging.getLogger(__name__)

# tcp://HOST:PORT (PORT 1-65535, or * for any free port), ipc://PATH or inproc://NAME.
_TCP = re.compile(r"tcp://(?P<host>[^:/\s]+|\[[0-9a-fA-F:.]+\]):(?P<port>\*|\d+)")
_OTHER = re.compile(r"(ipc|inproc)://\S+")

MIN_FRAME_LIMIT = 4 * 1024 * 1024  # a frame cap never below this: a 640x480 image still gets a helpful reply
LEGACY_FRAME_LIMIT = 64 * 1024 * 1024  # when a service cannot say how large a valid frame is


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
    max_batch: int = 8  # requests of one kind run together; 8 robots per GPU forward is plenty here
    batch_wait_ms: float = 2.0  # how long the worker waits for more requests to fill a batch
    max_request_bytes: int = 16 * 1024 * 1024  # larger requests get an error reply
    # ZMQ_MAXMSGSIZE, per frame: the socket drops the connection of a peer sending a larger frame.
    # None: max(4 MiB, the largest frame the services accept), 64 MiB if a service cannot say.
    hard_limit_bytes: int | None = None
    max_queue: int = 256  # requests in flight over all clients; beyond, the server answers "busy"
    max_queued_bytes: int = 256 * 1024 * 1024  # bytes in flight over all clients
    max_client_requests: int = 32  # requests in flight per client (connection)
    max_client_bytes: int = 64 * 1024 * 1024  # bytes in flight per client
    rcvhwm: int = 64  # complete messages libzmq holds per peer before the I/O thread reads them
    heartbeat_ivl_ms: int = 1000  # ZMTP pings; a peer that sends no complete frame within the
    heartbeat_timeout_ms: int = 5000  # timeout (e.g. stalled mid-frame) is disconnected
    default_deadline_ms: float = 1000.0  # used when a request names no deadline
    max_worker_restarts: int = 5  # within restart_window_s; one more death and the server fails
    restart_window_s: float = 60.0
    watchdog_interval_s: float = 0.1
    curve_secret_key: str | None = None  # server key file (zmq.auth certificate); enables CURVE
    curve_authorized_dir: str | None = None  # directory of client public keys allowed to connect
    curve_encrypt_only: bool = False  # CURVE without an allow-list: any client key is accepted

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint)
        if self.max_batch < 1:
            raise ServeError(f"max_batch (--max-batch) must be at least 1, got {self.max_batch}")
        for name in ("max_queue", "max_queued_bytes", "max_client_requests", "max_client_bytes",
                     "max_request_bytes", "rcvhwm", "heartbeat_ivl_ms", "heartbeat_timeout_ms"):
            if getattr(self, name) < 1:
                raise ServeError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hard_limit_bytes is not None and self.hard_limit_bytes < 1:
            raise ServeError(f"hard_limit_bytes must be at least 1, got {self.hard_limit_bytes}")
        if self.batch_wait_ms < 0 or self.default_deadline_ms <= 0 or self.max_worker_restarts < 0:
            raise ServeError("batch_wait_ms and max_worker_restarts must be >= 0, default_deadline_ms > 0")
        self._check_curve()

    def _check_curve(self) -> None:
        """Key files and the allow-list are read now, so a mistake is a one-line error before any
        model loads; CURVE that would let any client in must be asked for by name."""
        if not self.curve_secret_key:
            if self.curve_authorized_dir or self.curve_encrypt_only:
                raise ServeError("--curve-authorized and --curve-encrypt-only need --curve-secret "
                                 "(the server's secret key file)")
            return
        load_curve_key(self.curve_secret_key, secret=True)
        if self.curve_authorized_dir and self.curve_encrypt_only:
            raise ServeError("pass --curve-authorized DIR or --curve-encrypt-only, not both")
        if self.curve_authorized_dir:
            check_allow_list(self.curve_authorized_dir)
        elif not self.curve_encrypt_only:
            raise ServeError("CURVE without --curve-authorized encrypts but lets any client key in; pass "
                             "--curve-authorized DIR (the robots' public keys), or --curve-encrypt-only "
                             "to accept that")


class Service(Protocol):
    """Something that answers one or more operations, a batch at a time.

    Optional: ``check(request) -> Hashable`` validates one request before it is queued (raise
    ValueError / UserError for a bad one) and returns its compatibility key: only requests with
    equal keys are batched together. ``max_frame_bytes() -> int | None``: the largest frame a
    valid request has, which sizes the socket's frame cap.
    """

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
    client: bytes = b""  # whose share of the caps it uses (the ROUTER identity: one connection)
    nbytes: int = 0
    key: Hashable = None  # compatibility key: only equal keys share a batch
    answered: bool = False


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
        cfg = self.config
        self._queue = FairQueue(Limits(cfg.max_queue, cfg.max_queued_bytes, cfg.max_client_requests,
                                       cfg.max_client_bytes))
        self.frame_limit = self._frame_limit()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.failed = threading.Event()  # set with ``failure`` when the server can no longer serve
        self.failure: str | None = None
        self._io: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._auth = None
        self._bind_error: str | None = None
        self.io_error: str | None = None
        self.last_worker_error: str | None = None
        self.worker_restarts = 0
        self._restart_times: deque[float] = deque()
        self._batch_started: float | None = None
        self.started = time.monotonic()
        self.served = 0
        self.errors = 0
        self.endpoint = self.config.endpoint  # the bound endpoint (resolved port when ":0"/"*")

    def _frame_limit(self) -> int:
        if self.config.hard_limit_bytes:
            return self.config.hard_limit_bytes
        sizes = [getattr(svc, "max_frame_bytes", lambda: None)() for svc in set(self.services.values())]
        if not sizes or any(s is None for s in sizes):
            return LEGACY_FRAME_LIMIT
        return max(MIN_FRAME_LIMIT, *sizes)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "InferenceServer":
        """Bind and start the I/O, worker and watchdog threads; returns once the socket is bound."""
        self._inproc = f"inproc://replies-{id(self)}"
        self._io = threading.Thread(target=self._io_main, name="zmq-io", daemon=True)
        self._io.start()
        if not self._ready.wait(10.0) or self._bind_error:
            error = self._bind_error or "timed out"
            self.stop()
            raise ServeError(f"cannot serve on {self.config.endpoint}: {error}")
        self._start_worker()
        self._watchdog = threading.Thread(target=self._watch, name="zmq-watchdog", daemon=True)
        self._watchdog.start()
        if self.config.curve_encrypt_only:
            log.warning("CURVE encryption only: any client key is accepted (no allow-list)")
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in (self._watchdog, self._worker, self._io):
            if t is not None:
                t.join(timeout=5.0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self) -> "InferenceServer":
        return self if self._io is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- watchdog ------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Restart a dead inference worker; fail the server when that keeps happening or I/O dies.

        Why restart the worker in-process rather than exit at once: the worker is where unknown
        failures live (model code, a BaseException from a library), and a fresh thread reuses the
        loaded model, so robots are served again within ``watchdog_interval_s`` instead of after a
        process restart and a checkpoint load. The requests of the batch it died in get error
        replies. But a worker that dies again and again (more than ``max_worker_restarts`` times in
        ``restart_window_s``) points at a broken process (a wedged GPU context), so then the server
        fails: ``failed`` is set, health says ``"failed"``, predicts get error replies, and
        `embodied serve` exits 1 so a supervisor restarts the process.

        The I/O thread is not restarted: it runs no model and turns every exception into an error
        reply, so its death means the socket or the ZeroMQ context is broken, which only a new
        process fixes. Health cannot be answered without it; the process exits 1.
        """
        cfg = self.config
        while not self._stop.wait(cfg.watchdog_interval_s):
            try:
                if self.failure is not None or self._stop.is_set():
                    continue
                if self._io is not None and not self._io.is_alive():
                    self._fail(f"the I/O thread died ({self.io_error or 'no error recorded'})")
                elif self._worker is not None and not self._worker.is_alive():
                    now = time.monotonic()
                    while self._restart_times and now - self._restart_times[0] > cfg.restart_window_s:
                        self._restart_times.popleft()
                    if len(self._restart_times) >= cfg.max_worker_restarts:
                        self._fail(f"the inference worker died {len(self._restart_times) + 1} times within "
                                   f"{cfg.restart_window_s:g} s (last: {self.last_worker_error})")
                    else:
                        self._restart_times.append(now)
                        self.worker_restarts += 1
                        log.error("inference worker died (%s); restarting it (restart %d)",
                                  self.last_worker_error, self.worker_restarts)
                        self._start_worker()
            except Exception:  # noqa: BLE001 - the watchdog must outlive what it watches
                log.exception("watchdog error")

    def _fail(self, reason: str) -> None:
        self.failure = reason
        log.critical("inference server failed: %s", reason)
        self.failed.set()

    # -- I/O thread: never runs a model --------------------------------------------------------
    def _make_socket(self) -> zmq.Socket:
        cfg = self.config
        sock = self.ctx.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, self.frame_limit)
            sock.setsockopt(zmq.RCVHWM, cfg.rcvhwm)
            sock.setsockopt(zmq.HEARTBEAT_IVL, cfg.heartbeat_ivl_ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, cfg.heartbeat_timeout_ms)
            sock.setsockopt(zmq.HANDSHAKE_IVL, max(cfg.heartbeat_timeout_ms, 10_000))
            sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
            if cfg.curve_secret_key:
                self._enable_curve(sock)
            sock.bind(cfg.endpoint)
        except Exception:
            sock.close(linger=0)
            raise
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return sock

    def _enable_curve(self, sock: zmq.Socket) -> None:
        from zmq.auth import CURVE_ALLOW_ANY
        from zmq.auth.thread import ThreadAuthenticator

        cfg = self.config
        public, secret = load_curve_key(cfg.curve_secret_key, secret=True)
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        if cfg.curve_authorized_dir:
            self._auth.configure_curve(domain="*", location=str(cfg.curve_authorized_dir))
        else:  # only with curve_encrypt_only (ServerConfig refuses it otherwise)
            self._auth.configure_curve(domain="*", location=CURVE_ALLOW_ANY)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    def _io_main(self) -> None:
        self._bind_error = None
        try:
            sock = self._make_socket()
        except Exception as exc:  # noqa: BLE001 - reported to start()
            self._bind_error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._ready.set()
            return
        replies = self.ctx.socket(zmq.PULL)
        try:
            replies.bind(self._inproc)
            self._ready.set()
            self._io_loop(sock, replies)
        except BaseException as exc:  # noqa: BLE001 - recorded for the watchdog and health
            self.io_error = f"{type(exc).__name__}: {exc}"
            log.critical("the I/O thread died: %s", self.io_error, exc_info=True)
        finally:
            sock.close(linger=0)
            replies.close(linger=0)

    @staticmethod
    def _drain(source: zmq.Socket, handle: Callable[[list], None], limit: int = 256) -> None:
        """Handle up to ``limit`` waiting messages of ``source`` (bounded, so neither socket starves)."""
        for _ in range(limit):
            try:
                frames = source.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            handle(frames)

    def _io_loop(self, sock: zmq.Socket, replies: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(replies, zmq.POLLIN)
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll(50))
                if replies in ready:
                    self._drain(replies, lambda frames: self._send(sock, frames))
                if sock in ready:
                    self._drain(sock, lambda frames: self._on_message(sock, frames))
                if self.failure is not None and self._queue.queued:
                    self._refuse_queued(sock)
            except zmq.ContextTerminated:
                raise
            except Exception:  # noqa: BLE001 - one bad message or send must not stop the loop
                self.errors += 1
                log.exception("error in the receive loop; going on")

    def _send(self, sock: zmq.Socket, frames: list) -> None:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:  # the peer is gone or its pipe is full: drop this reply
            log.debug("reply dropped: %s", exc)

    def _on_message(self, sock: zmq.Socket, frames: list[zmq.Frame]) -> None:
        client = frames[0].bytes
        route = [client]
        body = frames[1:]
        if body and len(body[0]) == 0:  # REQ peers put an empty delimiter before the payload
            route.append(b"")
            body = body[1:]
        rid = None
        try:
            head, arrays = decode([f.buffer for f in body], self.config.max_request_bytes)
            rid = request_id(head)
            rid, op, budget = request_fields(head)
            if op in ("health", "info"):
                self._send(sock, route + encode({"id": rid, "ok": True, **self._status(op == "info")}))
                return
            if self.failure is not None:
                self.errors += 1
                self._send(sock, route + error_reply(rid, f"server failed: {self.failure}", "internal"))
                return
            service = self.services.get(op)
            if service is None:
                self.errors += 1
                known = ", ".join(sorted(["health", "info", *self.services]))
                self._send(sock, route + error_reply(rid, f"unknown op {op!r}; this server answers: {known}",
                                                     "unknown_op"))
                return
            now = time.monotonic()
            budget = self.config.default_deadline_ms if budget is None else budget
            request = Request(route, rid, op, head, arrays, now + budget / 1000.0, now,
                              client=client, nbytes=sum(len(f) for f in body))
            check = getattr(service, "check", None)
            request.key = (op, check(request) if check is not None else None)
            busy = self._queue.put(request)
            if busy is not None:
                self.errors += 1
                self._send(sock, route + error_reply(rid, f"server busy: {busy}", "busy"))
        except Exception as exc:  # noqa: BLE001 - any failure is this request's error reply
            self.errors += 1
            code, message = _describe_error(exc)
            if code == "internal":
                log.exception("error while receiving a request")
            self._send(sock, route + error_reply(rid, message, code))

    def _refuse_queued(self, sock: zmq.Socket) -> None:
        for req in self._queue.drain():
            self._send(sock, req.route + error_reply(req.id, f"server failed: {self.failure}", "internal"))
            self._queue.release(req)

    def _status(self, full: bool) -> dict[str, Any]:
        worker_alive = self._worker is not None and self._worker.is_alive()
        started = self._batch_started
        status: dict[str, Any] = {
            "status": "failed" if self.failure else "serving" if worker_alive else "degraded",
            "uptime_s": round(time.monotonic() - self.started, 3),
            "queued": self._queue.queued,
            "in_flight": self._queue.requests,
            "served": self.served,
            "errors": self.errors,
            "ops": sorted(self.services),
            "workers": {"io": "alive", "inference": "alive" if worker_alive else "dead",
                        "restarts": self.worker_restarts, "last_error": self.last_worker_error,
                        "busy_ms": None if started is None else round((time.monotonic() - started) * 1e3, 1)},
        }
        if self.failure:
            status["failure"] = self.failure
        if full:
            status["services"] = {op: svc.info() for op, svc in self.services.items()}
            status["max_request_bytes"] = self.config.max_request_bytes
            status["max_frame_bytes"] = self.frame_limit
        return status

    # -- worker thread: batches and runs the models --------------------------------------------
    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._worker_main, name="zmq-worker", daemon=True)
        self._worker.start()

    def _worker_main(self) -> None:
        out = self.ctx.socket(zmq.PUSH)
        out.connect(self._inproc)
        cfg = self.config
        try:
            while not self._stop.is_set():
                batch = self._queue.take_batch(cfg.max_batch, cfg.batch_wait_ms / 1000.0, 0.05)
                if batch:
                    self._run(batch, out)
        except BaseException as exc:  # noqa: BLE001 - recorded; the watchdog restarts the worker
            self.last_worker_error = f"{type(exc).__name__}: {exc}"
            log.error("inference worker died: %s", self.last_worker_error, exc_info=True)
        finally:
            out.close(linger=100)

    def _run(self, batch: list[Request], out: zmq.Socket) -> None:
        self._batch_started = time.monotonic()
        try:
            now = time.monotonic()
            live = []
            for req in batch:
                if req.deadline < now:
                    self._reply(out, req, {"ok": False, "error": "deadline exceeded before inference",
                                           "code": "deadline"})
                else:
                    live.append(req)
            if not live:
                return
            results = self._infer(live)
            done = time.monotonic()
            for req, (head, arrays) in zip(live, results):
                self._reply(out, req, {"ok": True, **head, "server_ms": round((done - req.received) * 1e3, 3),
                                       "batch": len(live)}, arrays)
        finally:
            self._batch_started = None
            for req in batch:  # only when the worker is dying (a BaseException) or a reply failed
                if not req.answered:
                    self._reply(out, req, {"ok": False, "error": "the inference worker died; retry",
                                           "code": "internal"})

    def _infer(self, reqs: list[Request]) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """The service's replies; a failed batch is retried one request at a time."""
        op = reqs[0].op
        service = self.services[op]
        try:
            return _checked(service.run_batch(op, reqs), len(reqs))
        except Exception as exc:  # noqa: BLE001 - any failure must end in replies
            if len(reqs) == 1:
                return [_error_result(exc)]
            log.warning("a batch of %d %r requests failed (%s: %s); retrying each alone",
                        len(reqs), op, type(exc).__name__, exc)
        results = []
        for req in reqs:
            try:
                results.extend(_checked(service.run_batch(op, [req]), 1))
            except Exception as exc:  # noqa: BLE001
                results.append(_error_result(exc))
        return results

    def _reply(self, out: zmq.Socket, req: Request, head: dict[str, Any],
               arrays: dict[str, np.ndarray] | None = None) -> None:
        head = {**head, "id": req.id}
        try:
            try:
                frames = encode(head, arrays)
            except Exception as exc:  # noqa: BLE001 - e.g. a dtype the protocol refuses
                head = {"id": req.id, "ok": False, "error": f"cannot encode the reply: {exc}", "code": "internal"}
                frames = encode(head)
            out.send_multipart(req.route + frames, copy=False)
        except Exception:  # noqa: BLE001
            log.exception("could not send a reply")
        finally:
            req.answered = True
            self._queue.release(req)
            if head.get("ok"):
                self.served += 1
            else:
                self.errors += 1


def _checked(results: list, n: int) -> list:
    if not isinstance(results, list) or len(results) != n:
        raise RuntimeError(f"the service returned {type(results).__name__} of {len(results) if isinstance(results, list) else '?'} "
                           f"replies for {n} requests")
    return results


def _describe_error(exc: BaseException) -> tuple[str, str]:
    """(code, one-line message): a bad request for user errors and ValueErrors, else internal."""
    text = (str(exc).strip().splitlines() or [""])[0][:500]
    if isinstance(exc, (UserError, ValueError)) or is_user_error(exc):
        return "bad_request", text or type(exc).__name__
    return "internal", f"internal error: {type(exc).__name__}: {text}"


def _error_result(exc: BaseException) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    code, message = _describe_error(exc)
    if code == "internal":
        log.error("inference failed: %s", message)
    return {"ok": False, "error": message, "code": code}, {}
