"""One BLAS thread for per-frame pose work.

The matrices here are small (thousands of pixels by a handful of parameters), and OpenBLAS, which
numpy ships with, hands even those to a pool of threads that spin while they wait. On a shared
2-core machine that spinning cost a third of the tracker's time (measured: 26 fps with one BLAS
thread against 18.5 with the default pool, same frames, same results). ``threadpoolctl`` is the
maintained way to limit a library's pool at run time, scoped to a call.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_controller = None


def _blas_limit():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def single_blas_thread(fn: F) -> F:
    """Run ``fn`` with numpy's BLAS limited to one thread (restored afterwards, ~13 us a call)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _blas_limit():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
