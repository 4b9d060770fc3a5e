"""Atomic outputs: the mode a plain file gets, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from ascend_slim.fileio import atomic_output, atomic_write_text, temporary_folder


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_get_the_mode_of_a_plain_file(tmp_path, umask):
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_output(tmp_path / "b.bin") as tmp, open(tmp, "wb") as f:  # writers that reopen the file
        f.write(b"y")
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("z")
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.bin") == mode(tmp_path / "plain.txt") == 0o666 & ~umask
    folder = temporary_folder(tmp_path, ".bundle.tmp.")
    assert folder.name.startswith(".bundle.tmp.") and mode(folder) == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name, "a.txt", "b.bin", "plain.txt"]


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "out.onnx") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
