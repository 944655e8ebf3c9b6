"""A grammar-aware fuzz of the inference server (issue 22): valid requests mutated at every level.

Each request starts as a valid ``predict`` for the tiny sim checkpoint, then one mutation is applied:
a header value of the wrong type, a missing or unknown key, a bad array spec (dtype, name, shape
that overflows), bad array contents (NaN state, wrong shapes and cameras), missing, extra, truncated
or swapped frames, bad msgpack, oversized frames, and good/bad pairs that land in one batch. Every
request must get exactly one well-formed reply; after every 50, health and a valid predict (equal
to a direct ``predict_chunk``) must be answered. Seeded, so a failure replays.
"""

from __future__ import annotations

import collections
import random
import time

import msgpack
import numpy as np
import zmq

from ros_nodes.zmq_protocol import decode
from tests.ros_nodes.test_zmq_hardening import (INSTRUCTION, assert_serving, dealer, observation,  # noqa: F401
                                                predict_frames, serve, tiny_policy)

N_REQUESTS = 1200
MAX_REQUEST = 1 << 20  # 1 MiB: a 2 MiB frame gets an "exceeds" reply; > 4 MiB (the frame cap) is dropped
WEIRD = [None, True, False, 0, -1, 1, 2**31, 2**63 - 1, -2**63, 2**64 - 1, 1.5, -0.0, float("nan"),
         float("inf"), float("-inf"), "", "x", "predict", "health", "info", "é" * 50, "x" * 5000, [], [1],
         [[1]], ["predict"], {}, {"a": 1}, {"v": 1}, [None] * 40]
DTYPES = ["object", "float128", "<f4", "U8", "V4", "complex64", "str", "O", "float32", "uint8", "int64",
          "bool", ["uint8"], {"uint8": 1}, None, 5]
SHAPES = [[2**32, 2**32], [2**62, 4], [2**64 - 1], [0, 2**62], [2**63], [-1], [1.5], ["3"], [True], [],
          [0], [1] * 9, [32, 32, 3, 1], [15, 1], [1, 15], [3, 32, 32], None, "32x32", 5, {"a": 1}]
CODES = {"bad_request", "busy", "unknown_op", "deadline", "internal"}


def _valid(rng: np.random.Generator, i: int) -> tuple[dict, list[tuple[str, np.ndarray]]]:
    obs = observation(int(rng.integers(1 << 30)))
    head = {"v": 1, "id": i, "op": "predict", "instruction": INSTRUCTION, "deadline_ms": 5000}
    arrays = [(k if k == "state" else f"image.{k}", v) for k, v in obs.items()]
    return head, arrays


def _frames(head: dict, arrays: list[tuple[str, np.ndarray]], specs: list | None = None) -> list[bytes]:
    specs = specs if specs is not None else [{"name": n, "dtype": a.dtype.name, "shape": list(a.shape)}
                                             for n, a in arrays]
    return [msgpack.packb({**head, "arrays": specs}), *[np.ascontiguousarray(a).tobytes() for _, a in arrays]]


def mutate(r: random.Random, rng: np.random.Generator, i: int) -> tuple[str, list[bytes]]:
    """(category, frames) of one mutated request."""
    head, arrays = _valid(rng, i)
    specs = [{"name": n, "dtype": a.dtype.name, "shape": list(a.shape)} for n, a in arrays]
    kind = r.choice(["header_type", "header_missing", "header_extra", "spec_field", "spec_structure",
                     "content", "frames", "msgpack", "oversized"])
    if kind == "header_type":
        head[r.choice(["v", "id", "op", "instruction", "deadline_ms", "arrays"])] = r.choice(WEIRD)
    elif kind == "header_missing":
        del head[r.choice(["v", "id", "op", "instruction", "deadline_ms"])]
    elif kind == "header_extra":
        head[r.choice(["extra", "arrays2", "state", "image.agentview", "ok", "code"])] = r.choice(WEIRD)
    elif kind == "spec_field":
        spec = r.choice(specs)
        field = r.choice(["name", "dtype", "shape", "drop"])
        if field == "name":
            spec["name"] = r.choice(WEIRD + ["image.", "image.left", "state", "x" * 200, "image.wrist"])
        elif field == "dtype":
            spec["dtype"] = r.choice(DTYPES)
        elif field == "shape":
            spec["shape"] = r.choice(SHAPES)
        else:
            del spec[r.choice(["name", "dtype", "shape"])]
    elif kind == "spec_structure":
        choice = r.randrange(4)
        if choice == 0:
            specs[r.randrange(len(specs))] = r.choice(WEIRD)
        elif choice == 1:
            specs = [*specs, *([specs[0]] * 33)]  # more specs than allowed (and frames)
        elif choice == 2:
            specs[1] = dict(specs[0])  # a name twice
        else:
            specs = r.choice(WEIRD)
        if not isinstance(specs, list):
            return kind, [msgpack.packb({**head, "arrays": specs}), *[a.tobytes() for _, a in arrays]]
    elif kind == "content":
        name, arr = r.choice(arrays)
        new = r.choice([
            np.full(15, np.nan, np.float32), np.full(15, np.inf, np.float32), np.zeros((1, 15), np.float32),
            np.zeros(14, np.float32), np.zeros((), np.float32), np.zeros(15, bool), np.zeros(15, np.int8),
            np.zeros(15, np.float16), np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.uint8),
            np.zeros((64, 64, 3), np.uint8), np.zeros((0, 32, 3), np.uint8), np.zeros((32, 32, 4), np.uint8)])
        pick = r.randrange(3)
        if pick == 0:
            arrays = [(n, new if n == name else a) for n, a in arrays]
        elif pick == 1:
            arrays = [(r.choice(["image.left", "image.", "depth", "state2"]), new), *arrays]
        else:
            arrays = [(n, a) for n, a in arrays if n != name]
        return kind, _frames(head, arrays)
    elif kind == "frames":
        frames = _frames(head, arrays, specs)
        choice = r.randrange(6)
        if choice == 0:
            del frames[r.randrange(1, len(frames))]
        elif choice == 1:
            frames.append(r.randbytes(r.randrange(0, 64)))
        elif choice == 2:
            k = r.randrange(1, len(frames))
            frames[k] = frames[k][:-r.randint(1, 8)]
        elif choice == 3:
            k = r.randrange(1, len(frames))
            frames[k] = frames[k] + b"\0" * r.randint(1, 8)
        elif choice == 4:
            frames[1], frames[-1] = frames[-1], frames[1]
        else:
            frames = frames[:1]
        return kind, frames
    elif kind == "msgpack":
        choice = r.randrange(5)
        if choice == 0:
            return kind, [r.randbytes(r.randint(1, 200))]
        if choice == 1:
            raw = msgpack.packb({**head, "arrays": specs})
            return kind, [raw[:r.randrange(1, len(raw))], *[a.tobytes() for _, a in arrays]]
        if choice == 2:
            return kind, [msgpack.packb(r.choice([[1, 2], "str", 7, None, 1.5, [head]]))]
        if choice == 3:
            return kind, [msgpack.packb({**head, "pad": "x" * (70 * 1024)})]
        return kind, [b"\x91" * 5000 + b"\xc0"]  # nested 5000 deep
    else:  # an image buffer larger than the request limit, below the socket's frame cap
        big = np.zeros((2 * MAX_REQUEST // 96 + 1, 32, 3), np.uint8)
        arrays = [(n, big if n == "image.wrist" else a) for n, a in arrays]
        return kind, _frames(head, arrays)
    return kind, _frames(head, arrays, specs)


def test_fuzz_grammar_aware_server_keeps_serving(tiny_policy):
    r, rng = random.Random(22), np.random.default_rng(22)
    counts: collections.Counter = collections.Counter()
    started = time.monotonic()
    with serve(tiny_policy, max_request_bytes=MAX_REQUEST, batch_wait_ms=5) as server:
        assert server.frame_limit == 4 * 1024 * 1024
        sock, other = dealer(server.endpoint), dealer(server.endpoint)
        sent, checks, next_check = 0, 0, 50
        while sent < N_REQUESTS:
            if sent % 10 == 9:  # a good and a bad request in one batch window, from two clients
                bad_state = r.choice([np.zeros((1, 15), np.float32), np.full(15, np.nan, np.float32),
                                      np.zeros(16, np.float32)])
                good = observation(sent)
                sock.send_multipart(predict_frames(good, "good"))
                other.send_multipart(predict_frames({**observation(sent + 1), "state": bad_state}, "bad"))
                assert sock.poll(10000) and other.poll(10000)
                (hg, og), (hb, _) = decode(sock.recv_multipart(), 1 << 26), decode(other.recv_multipart(), 1 << 26)
                assert hg["ok"] and hg["id"] == "good", hg
                np.testing.assert_allclose(og["action"], tiny_policy.predict_chunk([good], [INSTRUCTION])[0],
                                           rtol=1e-5, atol=1e-6)
                assert not hb["ok"] and hb["id"] == "bad" and hb["code"] == "bad_request", hb
                counts["mixed_batch"] += 2
                sent += 2
            else:
                kind, frames = mutate(r, rng, sent)
                sock.send_multipart(frames)
                assert sock.poll(10000), f"request {sent} ({kind}) got no reply"
                reply = sock.recv_multipart()
                head = msgpack.unpackb(reply[0])
                assert isinstance(head.get("ok"), bool), head
                if head["ok"]:
                    action = decode(reply, 1 << 26)[1]["action"]
                    assert action.shape == (2, 7) and np.isfinite(action).all()
                else:
                    assert isinstance(head["error"], str) and head["error"] and head["code"] in CODES, head
                counts[(kind, head["ok"])] += 1
                sent += 1
            if sent >= next_check:  # every 50 requests: health and a correct predict
                assert_serving(server, tiny_policy)
                checks += 1
                next_check += 50
        # Frames above the socket's cap: libzmq drops the connection, the server goes on.
        for _ in range(5):
            rude = dealer(server.endpoint)
            head, arrays = _valid(rng, -1)
            rude.send_multipart(_frames(head, [("image.wrist", np.zeros((5 << 20,), np.uint8)), *arrays[:1]]))
            assert not rude.poll(300)
            rude.close()
            counts["over_frame_cap"] += 1
        assert_serving(server, tiny_policy)
        sock.close()
        other.close()
        assert server.worker_restarts == 0 and server.io_error is None and not server.failed.is_set()
    elapsed = time.monotonic() - started
    categories = collections.Counter()
    for key, n in counts.items():
        if isinstance(key, tuple):
            categories[key[0]] += n
    print(f"\nfuzz: {sum(categories.values()) + counts['mixed_batch'] + counts['over_frame_cap']} requests "
          f"in {elapsed:.1f} s, {checks} health+predict checks; by category: {dict(sorted(categories.items()))}; "
          f"accepted: {sum(n for k, n in counts.items() if isinstance(k, tuple) and k[1] is True)}; "
          f"mixed-batch pairs: {counts['mixed_batch'] // 2}; over the frame cap: {counts['over_frame_cap']}")
    assert sum(categories.values()) + counts["mixed_batch"] >= 1000
    assert checks >= 20
    assert len(categories) == 9 and all(n >= 30 for n in categories.values()), categories
