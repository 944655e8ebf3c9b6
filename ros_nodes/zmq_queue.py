"""The inference server's request queue: fair across clients, bounded in requests and bytes.

One FIFO per client (its ROUTER identity, i.e. one connection), served round-robin, so a client
that floods the server waits behind its own requests, not everyone else's: a polite robot's
request goes into the next batch whatever another client has queued. Admission is capped per
client and globally, in requests and in bytes, counting a request from admission until its reply
is sent (``release``), so a flood is answered ``busy`` instead of growing memory.

A batch holds only requests with the same compatibility key (the service's ``check``: op, image
and state shapes), so one robot's odd request can never break another's batch.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Hashable


@dataclass(frozen=True)
class Limits:
    max_requests: int = 256  # in flight over all clients
    max_bytes: int = 256 * 1024 * 1024
    client_requests: int = 32  # in flight per client
    client_bytes: int = 64 * 1024 * 1024


class FairQueue:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._cond = threading.Condition()
        self._queues: OrderedDict[bytes, deque[Any]] = OrderedDict()  # round-robin order
        self._client_load: dict[bytes, list[int]] = {}  # client -> [requests, bytes] in flight
        self.requests = 0  # in flight (queued or running)
        self.bytes = 0
        self.queued = 0

    def put(self, req: Any) -> str | None:
        """Admit ``req`` (needs ``client``, ``nbytes``, ``key``), or say why not (the ``busy`` reason)."""
        lim = self.limits
        with self._cond:
            load = self._client_load.get(req.client, [0, 0])
            if load[0] + 1 > lim.client_requests:
                return f"this client already has {load[0]} requests in flight (limit {lim.client_requests})"
            if load[1] + req.nbytes > lim.client_bytes:
                return f"this client already has {load[1]} bytes in flight (limit {lim.client_bytes})"
            if self.requests + 1 > lim.max_requests or self.bytes + req.nbytes > lim.max_bytes:
                return "the request queue is full"
            self._client_load[req.client] = [load[0] + 1, load[1] + req.nbytes]
            self.requests += 1
            self.bytes += req.nbytes
            self._queues.setdefault(req.client, deque()).append(req)
            self.queued += 1
            self._cond.notify()
            return None

    def release(self, req: Any) -> None:
        """``req`` has been answered: its share of the caps is free again."""
        with self._cond:
            load = self._client_load.get(req.client)
            if load is None:
                return
            load[0] -= 1
            load[1] -= req.nbytes
            if load[0] <= 0:
                del self._client_load[req.client]
            self.requests -= 1
            self.bytes -= req.nbytes

    def take_batch(self, max_batch: int, wait_s: float, timeout_s: float) -> list[Any]:
        """Up to ``max_batch`` compatible requests, taken round-robin across clients.

        Waits up to ``timeout_s`` for a first request, then up to ``wait_s`` for more of its kind.
        """
        with self._cond:
            if not self.queued and not self._cond.wait_for(lambda: self.queued > 0, timeout_s):
                return []
            client, q = next(iter(self._queues.items()))
            first = q.popleft()
            self._took(client)
            batch = [first]
            until = time.monotonic() + wait_s
            while len(batch) < max_batch:
                if self._take_matching(first.key, batch, max_batch):
                    continue
                remaining = until - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return batch

    def drain(self) -> list[Any]:
        """Every queued request (still counted in flight until released)."""
        with self._cond:
            out = [req for q in self._queues.values() for req in q]
            self._queues.clear()
            self.queued = 0
            return out

    def _take_matching(self, key: Hashable, batch: list[Any], max_batch: int) -> bool:
        """One round-robin pass: at most one request of kind ``key`` from each client."""
        took = False
        for client in list(self._queues):
            if len(batch) >= max_batch:
                break
            q = self._queues[client]
            for i, req in enumerate(q):
                if req.key == key:
                    del q[i]
                    batch.append(req)
                    self._took(client)
                    took = True
                    break
        return took

    def _took(self, client: bytes) -> None:
        self.queued -= 1
        q = self._queues.pop(client)
        if q:
            self._queues[client] = q  # to the back of the round-robin order
