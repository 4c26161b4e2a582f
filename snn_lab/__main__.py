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
    try:
        from snn_lab.cli import main

        main()
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        code = INTERRUPTED
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if code == INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(INTERRUPTED)
    sys.exit(code)


if __name__ == "__main__":
    entry()
