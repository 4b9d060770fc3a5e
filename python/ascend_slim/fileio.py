"""Atomic file output: nothing half-written is ever left behind."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
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


def claim_run_dir(path: str | Path, *, exist_ok: bool = False, increment: bool = False) -> tuple[Path, bool]:
    """Create the run folder ``path`` exclusively (``mkdir`` without exist-ok, so two runs started together never
    share one): when it exists, ``increment`` takes the next free ``path2``, ``path3``, ... (Ultralytics'
    numbering), ``exist_ok`` takes ``path`` itself (the caller refuses one that holds a run), and otherwise it is
    refused. Returns the folder and whether this call created it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate, True
        except FileExistsError:
            if exist_ok and candidate.is_dir():
                return candidate, False
            if not increment:
                raise AscendSlimError(f"run folder {path} exists: choose another name, or --exist-ok to reuse "
                                      "it") from None
        n += 1
        candidate = Path(f"{path}{n}")


def create_new_file(path: str | Path) -> None:
    """Create the empty file ``path``, failing with FileExistsError when it exists (even in a race)."""
    _new_file(Path(path))


def check_apart(what: str, path: str | Path, others: Named) -> None:
    """Refuse an output folder ``path`` that is, holds, or lies inside any of ``others`` (files or folders a run
    reads or writes: replacing ``path`` would destroy them, or writing them would change it)."""
    real = Path(os.path.realpath(path))
    for other_what, other in others:
        if not other:
            continue
        other_real = Path(os.path.realpath(other))
        if real == other_real or other_real.is_relative_to(real) or real.is_relative_to(other_real):
            relation = "is" if real == other_real else "holds" if other_real.is_relative_to(real) else "lies inside"
            raise AscendSlimError(f"{what} {path} {relation} {other_what} {other}: replacing it would destroy files "
                                  "the run needs; choose a folder apart from both")


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


Named = Iterable[tuple[str, "str | Path | None"]]  # (what, path) pairs, e.g. ("--onnx", "m.onnx"); None: absent


def check_outputs(inputs: Named, files: Named = (), folders: Named = ()) -> None:
    """Before any work: refuse an output that would overwrite an input, or that cannot be written.

    ``inputs`` are the files and folders a command reads, ``files`` and ``folders`` what it writes. Paths are
    compared resolved (symlinks followed). An output file may not be an input, nor an existing file inside an
    input folder; an output folder may not be an input folder nor hold an input anywhere inside it (a command
    replaces files there by its own names). Two outputs may not be one path. Every output's folder must be
    writable (:func:`check_output_dir`). Raises AscendSlimError naming both paths.
    """
    read = [(what, Path(path), Path(os.path.realpath(path))) for what, path in inputs if path]
    written: dict[Path, str] = {}
    for kind, outputs in (("file", files), ("folder", folders)):
        for what, path in outputs:
            if not path:
                continue
            real = Path(os.path.realpath(path))
            if real in written:
                raise AscendSlimError(f"{what} {path} is also {written[real]}: give each output its own path")
            written[real] = what
            for in_what, in_path, in_real in read:
                _refuse_overlap(kind, what, Path(path), real, in_what, in_path, in_real)
            if kind == "folder":
                check_output_dir(path, f"output folder {what}")
            else:
                check_output_dir(Path(path).parent, f"{what} folder")


def _refuse_overlap(kind: str, what: str, path: Path, real: Path, in_what: str, in_path: Path, in_real: Path) -> None:
    if real == in_real:
        raise AscendSlimError(f"{what} {path} is the input {in_what} {in_path}: writing it would destroy the "
                              "input; choose another output path")
    if kind == "file" and in_real.is_dir() and real.is_relative_to(in_real) and real.exists():
        raise AscendSlimError(f"{what} {path} would overwrite a file of the input folder {in_what} {in_path}; "
                              "choose a path outside it")
    if kind == "folder" and in_real.is_relative_to(real):
        raise AscendSlimError(f"{what} {path} holds the input {in_what} {in_path}, which writing there could "
                              "overwrite; choose another folder")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
