"""numpy's BLAS thread count, limited to one while small products run side by side.

A 256 x 128 by 128 x 128 product spread over two cores by OpenBLAS runs only about 1.5 times
as fast as on one, and every product pays for waking its threads. For small layers the engine
instead runs each trial's product on one core and several trials at once (one per engine
thread): more work done per second, and products that do not depend on OPENBLAS_NUM_THREADS.
threadpoolctl finds the BLAS numpy loaded (OpenBLAS, MKL, BLIS) and sets its count.
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
