"""Ctrl-C and SIGTERM: one flag, and KeyboardInterrupt, whatever a library turns it into.

A KeyboardInterrupt raised inside an import can come out as another error: pybind11 reports
"ImportError: initialization failed", and a second thread importing the same module sees it
half-initialized. Code that sees an error can ask `received()` whether it is really an interrupt.
"""

from __future__ import annotations

import signal
import threading

_received = threading.Event()


def _raise(signum, frame):
    _received.set()
    raise KeyboardInterrupt


def received() -> bool:
    """Whether Ctrl-C or SIGTERM arrived while `catching` was in force."""
    return _received.is_set()


class catching:
    """Within: SIGINT (unless ignored, as in a shell's background job) and SIGTERM raise
    KeyboardInterrupt and set the flag. Only the main thread can install handlers."""

    def __enter__(self) -> catching:
        self.previous = {}
        _received.clear()  # a new command: an earlier one's interrupt (in this process) is over
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self.previous[sig] = signal.signal(sig, _raise)
        if hasattr(signal, "pthread_sigmask"):
            # A blocked signal mask survives exec: a parent that launched us with SIGINT or
            # SIGTERM blocked would make Ctrl-C never arrive (seen under the test suite).
            signal.pthread_sigmask(signal.SIG_UNBLOCK, set(self.previous))
        return self

    def __exit__(self, *exc) -> bool:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False
