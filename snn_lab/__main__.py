"""python -m snn_lab, and the `snn-lab` command: the CLI, with Ctrl-C at any moment exit 130."""

import os
import sys

INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def entry() -> None:
    """Run the CLI; an interrupted command leaves at once with exit status 130.

    Ctrl-C while the CLI itself is still importing gets the same one line as later. After an
    interrupt, nothing is left to clean up (each command removed its temporaries already), so the
    process ends without the interpreter's shutdown: CPython can turn a handled Ctrl-C back into
    death by SIGINT there (returncode -2, seen in 2 of 40 runs), and would join helper threads.
    """
    code = None
    try:
        try:
            from snn_lab.cli import main

            main()
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
        _finished(code)
    except KeyboardInterrupt:
        if code is None:
            print("interrupted: nothing was written", file=sys.stderr)
            code = INTERRUPTED
        else:  # the command had ended, its status stands
            _finished(code)
    if code == INTERRUPTED:
        _flush()
        os._exit(INTERRUPTED)
    sys.exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _finished(code) -> None:
    """The command has ended: Ctrl-C or SIGTERM from now on leaves at once with its status.

    Otherwise a signal during the interpreter's shutdown kills the process by SIGINT (returncode
    -2, seen when Ctrl-C came just as a run finished) or waits for the shutdown."""
    import signal

    status = 0 if code is None else code if isinstance(code, int) else 1  # as sys.exit(code) would

    def leave(signum, frame):
        _flush()
        os._exit(status)

    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, leave)


if __name__ == "__main__":
    entry()
