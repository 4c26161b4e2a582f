"""Writing files without following symbolic links: atomic writes, umask-honouring folders."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class LinkError(OSError):
    """A path snn-lab would write into is a symbolic link (or not a folder): never followed."""


def fresh_dir(parent: str | Path, prefix: str) -> Path:
    """A new, empty hidden folder in parent, its mode from the umask (mkdtemp's is always 0700)."""
    parent = Path(parent)
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)  # the umask applies, as it does for mkdir(1)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{parent}: no free temporary name for {prefix}*")


def real_dir(path: str | Path, create: bool = True) -> Path:
    """path as a folder that is not a symbolic link (created, parents too, if missing)."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not create:
            raise
        path.mkdir(parents=True, exist_ok=True)
        mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise LinkError(f"{path} is a symbolic link; snn-lab does not write through links "
                        "(remove it, or choose another folder)")
    if not stat.S_ISDIR(mode):
        raise LinkError(f"{path} exists and is not a folder")
    return path


def write_bytes(path: str | Path, data: bytes, folder_link_ok: bool = False) -> Path:
    """Write path atomically: a new file in the same folder, then renamed over the name.

    A symbolic link at path is replaced, never written through; the folder itself must not be
    a link (LinkError) unless folder_link_ok (a folder the user named). Readers see the old file
    or the new one, never a half-written one.
    """
    path = Path(path)
    folder = path.parent.resolve() if folder_link_ok else real_dir(path.parent, create=False)
    tmp = f".{path.name[:200]}.tmp-{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if not _DIR_FD:  # e.g. Windows: by path (the folder was checked just above)
        fd = os.open(folder / tmp, flags, 0o666)
        _fill(fd, data, lambda: os.replace(folder / tmp, path), lambda: os.unlink(folder / tmp))
        return path
    # Through a descriptor of the folder: a link swapped in for it after the check is not followed.
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
        _fill(fd, data, lambda: os.rename(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd),
              lambda: os.unlink(tmp, dir_fd=dir_fd))
    finally:
        os.close(dir_fd)
    return path


_DIR_FD = {os.open, os.rename, os.unlink} <= os.supports_dir_fd and hasattr(os, "O_DIRECTORY")


def _fill(fd: int, data: bytes, commit, discard) -> None:
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        commit()
    except BaseException:
        try:
            discard()
        except OSError:
            pass
        raise


def write_text(path: str | Path, text: str, folder_link_ok: bool = False) -> Path:
    """write_bytes of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"), folder_link_ok)


class Busy(OSError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An exclusive lock on a folder: flock on the folder itself, so no lock file is written.

    The kernel drops it when the holder exits or is killed, so a crashed writer never blocks
    the next one. Without fcntl (Windows) it is a no-op: writes stay atomic, only unserialized.
    """

    def __init__(self, folder: str | Path, wait: bool = True, follow: bool = False):
        """follow: a folder the user named may be a link (~/data -> /big/disk); a folder that
        snn-lab made (a sweep's) is locked only as itself."""
        self.fd = None
        try:
            import fcntl
        except ImportError:
            return
        nofollow = 0 if follow else getattr(os, "O_NOFOLLOW", 0)
        self.fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            self.release()
            raise Busy(f"{folder} is being written by another snn-lab process") from None
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Closing the descriptor releases the lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
