"""VOC layout reading and safe XML parsing: the real shared subset and hand-made broken data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ascend_slim.classes import VOC_CLASSES
from ascend_slim.data.voc import load_voc
from ascend_slim.errors import AscendSlimError


def test_real_test_split(voc_root: Path):
    ds = load_voc(voc_root, split="test")
    assert len(ds.ids) == 417 and ds.skipped == []
    assert ds.num_objects == 1316 and ds.num_difficult == 253
    labels = np.concatenate([a.labels for a in ds.annotations.values()])
    assert set(labels.tolist()) == set(range(20))
    first = ds.annotations[ds.ids[0]]
    assert first.boxes.shape[1] == 4 and first.boxes.dtype == np.float64
    assert (first.boxes[:, :2] >= 1).all() and first.width > 0 and first.height > 0
    assert ds.image_path(ds.ids[0]).is_file()


def test_real_trainval_split(voc_root: Path):
    ds = load_voc(voc_root / "VOC2007", split="trainval")  # the year folder itself is accepted too
    assert (len(ds.ids), ds.num_objects, ds.num_difficult) == (269, 869, 178)


def _xml(objects, width=100, height=80) -> str:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{int(diff)}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, diff in objects
    )
    size = f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    return f"<annotation>{size}{objs}</annotation>"


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><size><width>10</width><height>10</height></size>
<object><name>&lol9;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>
</annotation>"""

GOOD = {
    "ok": _xml([("dog", (1, 1, 100, 80), False), ("person", (10.5, 20, 30, 40), True)]),
    "empty": _xml([]),  # an image without objects is valid
}
BAD = {
    "malformed": ("<annotation><size><width>10</width>", "malformed annotation"),
    "bomb": (BOMB, "DTDForbidden"),
    "outside": (_xml([("dog", (1, 1, 101, 80), False)]), "outside the 100x80 image"),
    "zero": (_xml([("dog", (0, 1, 50, 50), False)]), "outside"),
    "inverted": (_xml([("dog", (50, 1, 40, 50), False)]), "empty or outside"),
    "unknown": (_xml([("unicorn", (1, 1, 5, 5), False)]), "unknown class 'unicorn'"),
    "nosize": ("<annotation><object><name>dog</name></object></annotation>", "<size> missing"),
    "badnum": (_xml([("dog", ("a", 1, 5, 5), False)]), "not a number"),
    "noimage": (_xml([("dog", (1, 1, 5, 5), False)]), "image missing"),
    "noxml": (None, "annotation missing"),
}


def _make_voc(root: Path, ids, xml_by_id, images=None) -> Path:
    year = root / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / sub).mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        if xml_by_id.get(image_id) is not None:
            (year / "Annotations" / f"{image_id}.xml").write_text(xml_by_id[image_id])
        if images is None or image_id in images:
            (year / "JPEGImages" / f"{image_id}.jpg").write_bytes(b"\xff\xd8")  # existence is what is checked
    (year / "ImageSets/Main/test.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


@pytest.fixture()
def broken_voc(tmp_path: Path) -> Path:
    xml = {**GOOD, **{k: v[0] for k, v in BAD.items()}}
    ids = [*GOOD, *BAD]
    return _make_voc(tmp_path, ids, xml, images=[i for i in ids if i != "noimage"])


def test_default_mode_skips_and_reports_each_problem(broken_voc: Path):
    ds = load_voc(broken_voc, split="test")  # the entity bomb is refused as DTDForbidden below, not expanded
    assert ds.ids == ["ok", "empty"]
    reasons = dict(ds.skipped)
    assert list(reasons) == list(BAD)
    for image_id, (_, expected) in BAD.items():
        assert expected in reasons[image_id], (image_id, reasons[image_id])
    ok = ds.annotations["ok"]
    np.testing.assert_array_equal(ok.boxes, [[1, 1, 100, 80], [10.5, 20, 30, 40]])
    np.testing.assert_array_equal(ok.labels, [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")])
    np.testing.assert_array_equal(ok.difficult, [False, True])
    assert (ok.width, ok.height) == (100, 80)
    assert ds.annotations["empty"].boxes.shape == (0, 4)
    assert ds.num_objects == 2 and ds.num_difficult == 1


@pytest.mark.parametrize("bad_id", list(BAD))
def test_strict_mode_raises_at_the_problem(tmp_path: Path, bad_id: str):
    xml, expected = BAD[bad_id]
    root = _make_voc(tmp_path, ["ok", bad_id], {"ok": GOOD["ok"], bad_id: xml},
                     images=["ok"] if bad_id == "noimage" else None)
    with pytest.raises(AscendSlimError, match="strict mode") as info:
        load_voc(root, split="test", strict=True)
    assert expected in str(info.value) and bad_id in str(info.value)


def test_duplicate_ids_are_skipped(tmp_path: Path):
    root = _make_voc(tmp_path, ["ok"], {"ok": GOOD["ok"]})
    (root / "VOC2007/ImageSets/Main/test.txt").write_text("ok\nok\n")
    ds = load_voc(root)
    assert ds.ids == ["ok"] and "listed twice" in ds.skipped[0][1]


def test_layout_errors_name_the_path(tmp_path: Path):
    with pytest.raises(AscendSlimError, match="VOC root not found"):
        load_voc(tmp_path / "nowhere")
    with pytest.raises(AscendSlimError, match="VOC2012"):
        load_voc(tmp_path, year="2012")
    root = _make_voc(tmp_path / "r", ["ok"], {"ok": GOOD["ok"]})
    with pytest.raises(AscendSlimError, match=r"val\.txt"):
        load_voc(root, split="val")
    (root / "VOC2007/ImageSets/Main/test.txt").write_text("\n\n")
    with pytest.raises(AscendSlimError, match="lists no images"):
        load_voc(root)
    (root / "VOC2007/ImageSets/Main/test.txt").write_text("missing1\nmissing2\n")
    with pytest.raises(AscendSlimError, match=r"no usable image.*all 2 skipped"):
        load_voc(root)
    for f in (root / "VOC2007/JPEGImages").iterdir():
        f.unlink()
    (root / "VOC2007/JPEGImages").rmdir()
    with pytest.raises(AscendSlimError, match="JPEGImages"):
        load_voc(root)
