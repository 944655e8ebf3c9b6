"""The wire format between the inference server and its clients: msgpack header + raw array buffers.

A message is a multipart ZeroMQ message ``[header, buf_0, buf_1, ...]``. The header is a msgpack map
that names each buffer's dtype and shape; buffers are the arrays' raw bytes (C order). Nothing is
ever unpickled, dtypes come from a whitelist, and sizes are checked before any array is built, so a
hostile or broken peer can cost us a reply, never a crash (the traps of LeRobot/GELLO pickle and
openpi #1043 unbounded messages).

This module imports only numpy and msgpack: the robot-side client needs nothing heavier.
"""

from __future__ import annotations

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


class ProtocolError(UserError):
    """A malformed message; the server answers with an error reply and keeps serving."""


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
    """Parse and validate a message; raises ProtocolError with a reason a client can act on."""
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
    if head.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {head.get('v')!r} (server speaks {PROTOCOL_VERSION})")
    specs = head.get("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError("'arrays' must be a list of at most %d specs" % MAX_ARRAYS)
    if len(specs) != len(frames) - 1:
        raise ProtocolError(f"header names {len(specs)} arrays but {len(frames) - 1} buffers came")
    arrays: dict[str, np.ndarray] = {}
    for spec, buf in zip(specs, frames[1:]):
        arrays_name, arr = _array_from(spec, buf)
        arrays[arrays_name] = arr
    return head, arrays


def _array_from(spec: Any, buf: bytes | memoryview) -> tuple[str, np.ndarray]:
    if not isinstance(spec, dict):
        raise ProtocolError("array spec must be a map")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or not name:
        raise ProtocolError("array spec needs a non-empty 'name'")
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError(f"array {name!r}: dtype {dtype!r} not allowed")
    if (not isinstance(shape, list) or len(shape) > 8
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s for s in shape)):
        raise ProtocolError(f"array {name!r}: shape must be a list of at most 8 non-negative ints")
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if expected != len(buf):
        raise ProtocolError(f"array {name!r}: {len(buf)} bytes for shape {shape} {dtype} (need {expected})")
    arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
    return name, arr


def error_reply(request_id: Any, message: str, code: str = "bad_request") -> list[bytes | memoryview]:
    return encode({"id": request_id, "ok": False, "error": message, "code": code})
