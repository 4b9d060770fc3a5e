"""Atomic outputs: the mode a plain file gets, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from ascend_slim.errors import AscendSlimError
from ascend_slim.fileio import atomic_output, atomic_write_text, check_outputs, temporary_folder


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


def test_check_outputs_refuses_what_would_overwrite_an_input(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.jpg").write_bytes(b"a")
    (tmp_path / "m.pt").write_bytes(b"m")
    (tmp_path / "link.pt").symlink_to(tmp_path / "m.pt")
    inputs = [("--weights", tmp_path / "link.pt"), ("--data", data), ("--unused", None)]
    refusals = {
        "is the input --weights": dict(files=[("-o", tmp_path / "m.pt")]),  # through the symlink
        "would overwrite a file of the input folder --data": dict(files=[("--json", data / "a.jpg")]),
        "holds the input --weights": dict(folders=[("--out", tmp_path)]),
        "--out .* is the input --data": dict(folders=[("--out", data / "sub" / "..")]),
        "is also --json": dict(files=[("--json", tmp_path / "r"), ("--md", tmp_path / "x" / ".." / "r")]),
    }
    for message, outputs in refusals.items():
        with pytest.raises(AscendSlimError, match=message):
            check_outputs(inputs, **outputs)
    # new files beside or inside an input folder, and folders inside one, are fine
    check_outputs(inputs, files=[("-o", tmp_path / "m2.pt"), ("--json", data / "new.json")],
                  folders=[("--out", data / "results"), ("--plots", tmp_path / "plots")])
    assert not (data / "results").exists() and not (tmp_path / "plots").exists()  # nothing is created
