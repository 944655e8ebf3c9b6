"""One BLAS (and OpenCV) thread for per-frame perception work (pose, the scene perceiver).

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


def single_threaded(fn: F) -> F:
    """Run ``fn`` with numpy's BLAS and OpenCV each limited to one thread (restored afterwards,
    ~15 us a call). OpenCV's own pool (resize, erode, connected components) has the same problem
    and is not one threadpoolctl knows: 26 against 34 fps when it was left at two threads."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import cv2

        saved = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with _blas_limit():
                return fn(*args, **kwargs)
        finally:
            cv2.setNumThreads(saved)

    return wrapper  # type: ignore[return-value]
