"""numpy's BLAS limited to one thread while the engine runs.

The engine cuts each layer's product into row chunks fixed by the shape and runs them on its
own threads, each chunk on one BLAS thread. So the products' bits never depend on BLAS's thread
count (OpenBLAS rounds some shapes differently with 1 and 2 threads), no idle BLAS thread spins
on the core the engine's threads need between products (OpenBLAS issue 5171), and small
layers' products run side by side (two single-threaded 256 x 128 by 128 x 128 products at once
beat one spread over two cores). threadpoolctl finds the BLAS numpy loaded (OpenBLAS, MKL,
BLIS) and sets its count; where it finds none, BLAS keeps its own threads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_controller = None


def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, made once (~2 ms), or None."""
    global _controller
    with _lock:
        if _controller is None:
            try:
                from threadpoolctl import ThreadpoolController
                _controller = ThreadpoolController().select(user_api="blas")
            except Exception:  # noqa: BLE001 - no threadpoolctl, or a BLAS it cannot read
                _controller = False
        return _controller or None


@contextlib.contextmanager
def single_threaded() -> Iterator[bool]:
    """BLAS limited to one thread inside the block; yields whether the limit could be set."""
    controller = _blas_controller()
    if controller is None or not controller.lib_controllers:
        yield False
        return
    with controller.limit(limits=1):
        yield True
