"""The wire format between the inference server and its clients: msgpack header + raw array buffers.

A message is a multipart ZeroMQ message ``[header, buf_0, buf_1, ...]``. The header is a msgpack map
that names each buffer's dtype and shape; buffers are the arrays' raw bytes (C order). Nothing is
ever unpickled, dtypes come from a whitelist, every header value's type is checked before it is
used, and sizes are computed with Python integers (an int64 product can wrap to 0: ``[2**32,
2**32]``) and checked before any array is built, so a hostile or broken peer can cost us a reply,
never a crash (the traps of LeRobot/GELLO pickle and openpi #1043 unbounded messages).

This module imports only numpy and msgpack (pyzmq's ``zmq.auth`` lazily, for key files): the
robot-side client needs nothing heavier.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import msgpack
import numpy as np

from common.errors import UserError

PROTOCOL_VERSION = 1
# dtypes a peer may send; anything else (objects, void, strings) is refused.
ALLOWED_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "int32", "int64", "float16",
                            "float32", "float64", "bool"})
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 32
MAX_NAME_CHARS = 128  # array names, op names
MAX_ID_CHARS = 256
MAX_DIMS = 8


class ProtocolError(UserError):
    """A malformed message; the server answers with an error reply and keeps serving."""


class KeyFileError(UserError):
    """A CURVE key file or allow-list directory that is missing or unreadable (one line, exit 2)."""


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> list[bytes | memoryview]:
    """Frames for ``header`` plus named arrays (their dtype/shape go into ``header["arrays"]``)."""
    arrays = arrays or {}
    specs, bufs = [], []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype.name not in ALLOWED_DTYPES:
            raise ProtocolError(f"array {name!r} has dtype {arr.dtype}, not one of {sorted(ALLOWED_DTYPES)}")
        specs.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)})
        bufs.append(memoryview(arr).cast("B") if arr.size else b"")
    head = dict(header, v=PROTOCOL_VERSION, arrays=specs)
    return [msgpack.packb(head, use_bin_type=True), *bufs]


def decode(frames: Sequence[bytes | memoryview], max_bytes: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse and validate a message; raises ProtocolError (only) with a reason a client can act on."""
    if not frames:
        raise ProtocolError("empty message")
    total = sum(len(f) for f in frames)
    if total > max_bytes:
        raise ProtocolError(f"message of {total} bytes exceeds the limit of {max_bytes} bytes")
    raw_head = bytes(frames[0])
    if len(raw_head) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw_head)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        head = msgpack.unpackb(raw_head, raw=False, strict_map_key=True,
                               max_array_len=1024, max_map_len=256, max_str_len=MAX_HEADER_BYTES,
                               max_bin_len=0, max_ext_len=0)
    except Exception as exc:  # noqa: BLE001 - msgpack raises many types for garbage
        raise ProtocolError(f"header is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(head, dict):
        raise ProtocolError("header must be a msgpack map")
    version = head.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {_short(version)} (server speaks {PROTOCOL_VERSION})")
    specs = head.get("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError("'arrays' must be a list of at most %d specs" % MAX_ARRAYS)
    if len(specs) != len(frames) - 1:
        raise ProtocolError(f"header names {len(specs)} arrays but {len(frames) - 1} buffers came")
    arrays: dict[str, np.ndarray] = {}
    for spec, buf in zip(specs, frames[1:]):
        name, arr = _array_from(spec, buf, max_bytes)
        if name in arrays:
            raise ProtocolError(f"array {name!r} is named twice")
        arrays[name] = arr
    return head, arrays


def _array_from(spec: Any, buf: bytes | memoryview, max_bytes: int) -> tuple[str, np.ndarray]:
    if not isinstance(spec, dict):
        raise ProtocolError("array spec must be a map")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise ProtocolError(f"array spec needs a 'name' string of 1-{MAX_NAME_CHARS} characters")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:  # a list or map is unhashable
        raise ProtocolError(f"array {name!r}: dtype {_short(dtype)} not allowed (one of {sorted(ALLOWED_DTYPES)})")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(type(s) is int and 0 <= s <= max_bytes for s in shape)):
        raise ProtocolError(f"array {name!r}: shape must be a list of at most {MAX_DIMS} ints in "
                            f"[0, {max_bytes}]")
    expected = math.prod(shape) * np.dtype(dtype).itemsize  # Python ints: no wrap-around
    if expected != len(buf):
        raise ProtocolError(f"array {name!r}: {len(buf)} bytes for shape {shape} {dtype} (need {expected})")
    try:
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
    except (ValueError, OverflowError) as exc:  # belt and braces: numpy's own limits
        raise ProtocolError(f"array {name!r}: cannot build shape {shape} ({exc})") from None
    return name, arr


def request_fields(head: dict[str, Any]) -> tuple[Any, str, float | None]:
    """The request's ``id``, ``op`` and ``deadline_ms`` (None when absent), type-checked.

    Raises ProtocolError; call ``request_id`` first to know which id an error reply may echo.
    """
    rid = request_id(head)
    if "id" in head and head["id"] is not None and rid is None:
        raise ProtocolError(f"'id' must be a string of at most {MAX_ID_CHARS} characters or an integer")
    op = head.get("op")
    if not isinstance(op, str) or not 0 < len(op) <= MAX_NAME_CHARS:
        raise ProtocolError(f"'op' must be a non-empty string, got {_short(op)}")
    deadline = head.get("deadline_ms")
    if deadline is not None:
        if (not isinstance(deadline, (int, float)) or isinstance(deadline, bool)
                or not math.isfinite(deadline) or deadline <= 0):
            raise ProtocolError("deadline_ms must be a positive number")
        deadline = float(deadline)
    return rid, op, deadline


def request_id(head: Any) -> Any:
    """The header's ``id`` when it is one a reply can echo (a short string or an int), else None."""
    rid = head.get("id") if isinstance(head, dict) else None
    if isinstance(rid, str) and len(rid) <= MAX_ID_CHARS:
        return rid
    if type(rid) is int and -2**63 <= rid < 2**64:
        return rid
    return None


def error_reply(request_id: Any, message: str, code: str = "bad_request") -> list[bytes | memoryview]:
    return encode({"id": request_id, "ok": False, "error": message, "code": code})


def load_curve_key(path: str | Path, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) keys of a ``zmq.auth`` certificate file, or a one-line ``KeyFileError``."""
    from zmq.auth import load_certificate

    p = Path(path)
    if not p.is_file():
        raise KeyFileError(f"CURVE key file {p} not found")
    try:
        public, secret_key = load_certificate(p)
    except Exception as exc:  # noqa: BLE001 - pyzmq raises OSError, ValueError, KeyError...
        raise KeyFileError(f"CURVE key file {p} is not a zmq certificate ({_one_line(exc)})") from None
    if public is None or len(public) != 40:
        raise KeyFileError(f"CURVE key file {p} holds no valid public key")
    if secret and (secret_key is None or len(secret_key) != 40):
        raise KeyFileError(f"CURVE key file {p} holds no secret key (use the '.key_secret' file)")
    return public, secret_key


def check_allow_list(directory: str | Path) -> int:
    """The number of client public keys in a CURVE allow-list directory, or a ``KeyFileError``."""
    d = Path(directory)
    if not d.is_dir():
        raise KeyFileError(f"CURVE allow-list directory {d} not found")
    keys = sorted(d.glob("*.key"))
    if not keys:
        raise KeyFileError(f"CURVE allow-list directory {d} holds no client public keys (*.key): "
                           "no robot could connect")
    for key in keys:
        load_curve_key(key, secret=False)
    return len(keys)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
