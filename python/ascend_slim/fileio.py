"""Atomic file output: nothing half-written is ever left behind."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import AscendSlimError


def _create_unique(parent: Path, prefix: str, suffix: str, create: Callable[[Path], object]) -> Path:
    """``create(path)`` for a new random name in ``parent``; ``create`` raises FileExistsError for a taken one."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            create(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {parent}")


def _new_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as for open()


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed to ``path``, on error removed.

    The temporary file is created with the mode a plain ``open(path, "w")`` gives (0666 less the umask: 0644
    under umask 022), unlike ``mkstemp``'s 0600; writers that truncate and rewrite it keep that mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_unique(path.parent, f".{path.name}.", ".tmp", _new_file)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:  # a full disk or a file-size limit: name the output, not the temporary
        if exc.filename is None or exc.filename == str(tmp):
            exc.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def temporary_folder(parent: str | Path, prefix: str) -> Path:
    """A new hidden-by-prefix folder in ``parent`` with the mode a plain ``mkdir`` gives (``mkdtemp``'s is 0700),
    for outputs built whole and then renamed into place; the caller removes it on failure."""
    return _create_unique(Path(parent), prefix, "", os.mkdir)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Fail early, before any work, if ``path`` cannot become a writable folder (nothing is created)."""
    path = Path(path)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise AscendSlimError(f"{what} {path} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AscendSlimError(f"{what} {path} is not writable ({probe}): choose another folder")
    return path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
