"""Training samples: VOC (difficult left out), Ultralytics data yaml round trip, bad files, evaluation view."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ascend_slim.classes import VOC_CLASSES
from ascend_slim.data.samples import LabelledImages, SampleSet, load_samples
from ascend_slim.data.voc import VOCDataset, load_voc
from ascend_slim.data.yolo_txt import format_yolo_lines, label_path
from ascend_slim.errors import AscendSlimError
from ascend_slim.evaluation import metrics

N_IMAGES = 6


@pytest.fixture(scope="module")
def trainval(voc_root: Path) -> SampleSet:
    return load_samples(voc_root, "trainval")


def _non_difficult_objects(xml_path: Path) -> list[tuple[str, list[float]]]:
    objects = []
    for obj in ET.parse(xml_path).getroot().iter("object"):
        if int(obj.findtext("difficult", "0")) == 0:
            box = [float(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            objects.append((obj.findtext("name"), box))
    return objects


def test_voc_trainval_leaves_difficult_objects_out(trainval: SampleSet, voc_root: Path):
    assert len(trainval) == 269 and trainval.skipped == [] and trainval.names == VOC_CLASSES
    assert sum(len(s.labels) for s in trainval.samples) == 869 - 178  # all objects minus the difficult ones
    xml_dir = voc_root / "VOC2007" / "Annotations"
    for sample in trainval.samples[:20]:
        objects = _non_difficult_objects(xml_dir / f"{sample.image.stem}.xml")
        assert len(sample.labels) == len(objects)
        assert sample.labels.dtype == np.float32 and sample.labels.shape == (len(objects), 5)
        assert [VOC_CLASSES[int(c)] for c in sample.labels[:, 0]] == [name for name, _ in objects]
        assert (sample.labels[:, 1:] >= 0).all() and (sample.labels[:, 1:] <= 1).all()
    # 000005.jpg is 500x375; its first non-difficult chair is (263, 211, 324, 339): YOLOv5's VOC.yaml conversion
    first = trainval.samples[0]
    assert first.image.name == "000005.jpg"
    np.testing.assert_allclose(first.labels[0], [8, (293.5 - 1) / 500, (275 - 1) / 375, 61 / 500, 128 / 375],
                               rtol=1e-6)


def test_voc_eval_dataset_is_the_real_split(trainval: SampleSet, voc_root: Path):
    ev = trainval.eval_dataset()
    assert isinstance(ev, VOCDataset) and ev.ids == load_voc(voc_root, split="trainval").ids
    assert ev.num_difficult == 178  # difficult objects kept for scoring


def _yolo_dataset(root: Path, voc_root: Path, ids: list[str]) -> Path:
    """Images (symlinks) and YOLO labels written with format_yolo_lines from the VOC XML, as Ultralytics lays
    them out: the train split as a folder, the val split as a list file of './' paths."""
    voc = load_voc(voc_root, split="trainval")
    for i, image_id in enumerate(ids):
        split = "train" if i % 2 == 0 else "val"
        image = root / "images" / split / f"{image_id}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        image.symlink_to(voc.image_path(image_id))
        ann = voc.annotations[image_id]
        keep = ~ann.difficult
        label = label_path(image)
        label.parent.mkdir(parents=True, exist_ok=True)  # 0-based pixels, as YOLOv5's VOC.yaml subtracts 1
        label.write_text(format_yolo_lines(ann.boxes[keep] - 1, ann.labels[keep], (ann.height, ann.width)))
    val = sorted((root / "images" / "val").iterdir())
    (root / "val.txt").write_text("".join(f"./images/val/{p.name}\n" for p in val))
    config = {"path": ".", "train": "images/train", "val": "val.txt", "names": dict(enumerate(VOC_CLASSES))}
    (root / "data.yaml").write_text(yaml.safe_dump(config))
    return root / "data.yaml"


def test_yolo_yaml_round_trips_voc_boxes(tmp_path: Path, voc_root: Path, trainval: SampleSet):
    ids = [s.image.stem for s in trainval.samples[:N_IMAGES]]
    data = _yolo_dataset(tmp_path, voc_root, ids)
    train, val = load_samples(data, "train"), load_samples(data, "val")
    assert train.names == VOC_CLASSES and len(train) + len(val) == N_IMAGES
    assert [s.image.parent.name for s in train.samples] == ["train"] * len(train)
    voc_labels = {s.image.stem: s.labels for s in trainval.samples}
    for sample in train.samples + val.samples:
        np.testing.assert_allclose(sample.labels, voc_labels[sample.image.stem], atol=1e-6)

    ev = val.eval_dataset()  # back to 1-based pixel boxes, all not difficult
    assert isinstance(ev, LabelledImages) and ev.class_names == VOC_CLASSES
    voc = load_voc(voc_root, split="trainval")
    for image_id in ev.ids:
        got, want = ev.annotations[image_id], voc.annotations[image_id]
        keep = ~want.difficult
        np.testing.assert_allclose(got.boxes, want.boxes[keep], atol=1e-3)  # 6 decimals of a <= 500 px image
        np.testing.assert_array_equal(got.labels, want.labels[keep])
        assert not got.difficult.any() and (got.width, got.height) == (want.width, want.height)
        assert ev.image_path(image_id).resolve() == voc.image_path(image_id).resolve()


def test_yolo_eval_dataset_scores_a_perfect_detector_one(tmp_path: Path, voc_root: Path, trainval: SampleSet):
    data = _yolo_dataset(tmp_path, voc_root, [s.image.stem for s in trainval.samples[:N_IMAGES]])
    samples = load_samples(data, "train")
    ev = samples.eval_dataset()
    detections = {}
    for image_id, sample in zip(ev.ids, samples.samples):
        ann = ev.annotations[image_id]
        cls, cx, cy, w, h = sample.labels.astype(np.float64).T  # 0-based pixels, as a model predicts them
        x, y, bw, bh = cx * ann.width, cy * ann.height, w * ann.width, h * ann.height
        detections[image_id] = np.stack([x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2, np.ones_like(x), cls], 1)
    result = metrics.score_detections(detections, ev.annotations, ev.class_names)
    assert result.npos.sum() == sum(len(s.labels) for s in samples.samples) > 0
    assert result.means["ap50"] == pytest.approx(1.0) and result.means["ap50_95"] == pytest.approx(1.0)


def test_yolo_yaml_forms(tmp_path: Path, voc_root: Path, trainval: SampleSet):
    data = _yolo_dataset(tmp_path, voc_root, [s.image.stem for s in trainval.samples[:4]])
    config = yaml.safe_load(data.read_text())
    config.update(path=str(tmp_path), names=list(VOC_CLASSES), train=["images/train", "val.txt"])
    other = tmp_path / "elsewhere" / "both.yml"
    other.parent.mkdir()
    other.write_text(yaml.safe_dump(config))  # absolute path, a list of entries, names as a list
    both = load_samples(other, "train", class_names=VOC_CLASSES)
    assert len(both) == 4
    with pytest.raises(AscendSlimError, match="no 'test' entry"):
        load_samples(other, "test")
    with pytest.raises(AscendSlimError, match="make them agree"):
        load_samples(other, "train", class_names=["cat", "dog"])
    config["train"] = "images/nothing"
    other.write_text(yaml.safe_dump(config))
    with pytest.raises(AscendSlimError, match="images/nothing"):
        load_samples(other, "train")


def test_bad_files_are_skipped_with_one_warning_each(tmp_path: Path, voc_root: Path, capsys):
    good = voc_root / "VOC2007" / "JPEGImages" / "000005.jpg"
    images = tmp_path / "images"
    images.mkdir()
    names = ["good", "garbage", "empty", "badlabel", "badclass", "outside", "nolabel"]
    for name in names:
        (images / f"{name}.jpg").symlink_to(good)
    (images / "garbage.jpg").unlink()
    (images / "garbage.jpg").write_bytes(b"this is not an image")
    (images / "empty.jpg").unlink()
    (images / "empty.jpg").write_bytes(b"")
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in names[:-1]:
        (labels / f"{name}.txt").write_text("2 0.5 0.5 0.2 0.3\n")
    (labels / "badlabel.txt").write_text("2 0.5 zero 0.2 0.3\n")
    (labels / "badclass.txt").write_text("3 0.5 0.5 0.2 0.3\n")
    (labels / "outside.txt").write_text("0 0.5 0.5 1.5 0.3\n")
    (labels / "good.txt").write_text("2 0.5 0.5 0.2 0.3\n1 0.1 0.1 0.1 0.1\n2 0.5 0.5 0.2 0.3\n")  # one repeat
    (tmp_path / "list.txt").write_text("images/good.jpg\nimages/missing.jpg\n")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"train": "images", "val": "list.txt", "names": ["a", "b", "c"]}))

    train = load_samples(tmp_path / "d.yaml", "train")
    assert sorted(s.image.stem for s in train.samples) == ["good", "nolabel"]
    assert len(train.samples[1].labels) == 0  # no label file: an image without objects
    np.testing.assert_array_equal(train.samples[0].labels[:, 0], [2, 1])  # the repeated row counts once
    reasons = {Path(item).stem: reason for item, reason in train.skipped}
    assert sorted(reasons) == ["badclass", "badlabel", "empty", "garbage", "outside"]
    assert "cannot decode" in reasons["garbage"] and "not numbers" in reasons["badlabel"]
    assert "below 3" in reasons["badclass"] and "normalised" in reasons["outside"]
    lines = capsys.readouterr().err.splitlines()
    warnings = [line for line in lines if line.startswith("warning: skipped")]
    assert len(warnings) == 5 and all(any(k in w for w in warnings) for k in reasons)

    val = load_samples(tmp_path / "d.yaml", "val")
    assert len(val) == 1 and len(val.skipped) == 1 and "not found" in val.skipped[0][1]


def test_voc_bad_files_and_size_mismatch(tmp_path: Path, voc_root: Path):
    src = voc_root / "VOC2007"
    year = tmp_path / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / sub).mkdir(parents=True)
    for image_id in ("000005", "000009", "000012"):
        (year / "Annotations" / f"{image_id}.xml").symlink_to(src / "Annotations" / f"{image_id}.xml")
    (year / "JPEGImages" / "000005.jpg").symlink_to(src / "JPEGImages" / "000005.jpg")
    (year / "JPEGImages" / "000009.jpg").write_bytes(b"\xff\xd8 truncated")
    (year / "JPEGImages" / "000012.jpg").symlink_to(src / "JPEGImages" / "000005.jpg")  # 500x375, XML: 500x333
    (year / "ImageSets/Main/trainval.txt").write_text("000005\n000009\n000012\n000026\n")
    samples = load_samples(tmp_path, "trainval")  # the VOCdevkit folder
    assert [s.image.stem for s in samples.samples] == ["000005"]
    reasons = dict(samples.skipped)
    assert "cannot decode" in reasons["000009"] and "annotation missing" in reasons["000026"]
    assert "is 500x375 but 000012.xml says 500x333" in reasons["000012"]  # load_voc reads the header
    assert samples.eval_dataset().ids == ["000005"]
    assert [s.image.stem for s in load_samples(year, "trainval").samples] == ["000005"]  # the year folder


def test_empty_set_is_one_clear_error(tmp_path: Path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"nope")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"train": "images", "names": ["a"]}))
    with pytest.raises(AscendSlimError, match=r"no usable image in .*d\.yaml split 'train': 1 skipped"):
        load_samples(tmp_path / "d.yaml", "train")
    with pytest.raises(AscendSlimError, match=r"no VOC<year>/ImageSets/Main/trainval\.txt"):
        load_samples(tmp_path, "trainval")
    with pytest.raises(AscendSlimError, match="not found"):
        load_samples(tmp_path / "missing.yaml", "train")


def test_several_voc_years(tmp_path: Path, voc_root: Path):
    """Years default to every VOC<year> folder with the split; ids stay unique across years."""
    src = voc_root / "VOC2007"
    (tmp_path / "VOC2007").symlink_to(src)
    year = tmp_path / "VOC2012"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / sub).mkdir(parents=True)
    for image_id in ("000005", "000009"):
        (year / "Annotations" / f"2012_{image_id}.xml").symlink_to(src / "Annotations" / f"{image_id}.xml")
        (year / "JPEGImages" / f"2012_{image_id}.jpg").symlink_to(src / "JPEGImages" / f"{image_id}.jpg")
    (year / "ImageSets/Main/train.txt").write_text("2012_000005\n2012_000009\n")
    samples = load_samples(tmp_path, "train")
    assert len(samples) == 202 + 2
    ev = samples.eval_dataset()
    assert isinstance(ev, LabelledImages) and len(ev.ids) == len(set(ev.ids)) == 204
    assert ev.image_path("2012_000009").name == "2012_000009.jpg"
    assert len(load_samples(tmp_path, "train", years=["2012"])) == 2
    img = cv2.imread(str(ev.image_path("2012_000005")))
    assert img.shape[:2] == (ev.annotations["2012_000005"].height, ev.annotations["2012_000005"].width)


def test_label_path_follows_the_ultralytics_rule():
    assert label_path("/d/images/train/a.jpg") == Path("/d/labels/train/a.txt")
    assert label_path("/images/x/images/b.png") == Path("/images/x/labels/b.txt")  # the last images/ only
    assert label_path("/d/photos/c.jpeg") == Path("/d/photos/c.txt")


def test_samples_and_augment_do_not_import_torch():
    code = ("import sys, ascend_slim.data.samples, ascend_slim.data.augment; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
