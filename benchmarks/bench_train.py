"""Training throughput: images/s of ``ascend_slim.train.Trainer`` and the share of time spent waiting for data.

yolov5n from the official weights remapped to the 20 VOC classes, the shared VOC2007 trainval images (269),
batch 16, ``--cache ram``, at 320 and 640 pixels, no validation. The first epoch warms up (oneDNN kernels,
loader workers) and is not counted; the figures are medians over the later epochs.

Anchor: Ultralytics YOLOv5 v7.0 ``train.py`` on the project's 2-core machine with the same settings and 2
loader workers, ~30 images/s at 320 and ~6.6 at 640 (``../shared/data/README.md``); target >= 1.2x.

    python benchmarks/bench_train.py --json train.json
    python benchmarks/bench_train.py --device cuda:0 --sizes 640   # AMP on a GPU
"""

from __future__ import annotations

import os
import statistics
import tempfile

from _common import DATA, parser, write_json

ANCHOR_IMAGES_PER_S = {320: 30.0, 640: 6.6}
TARGET_RATIO = 1.2


def measure(size: int, epochs: int, batch_size: int, workers: int, device: str, run_dir: str) -> dict:
    import torch

    from ascend_slim.data.dataset import DetectionDataset
    from ascend_slim.data.samples import load_samples
    from ascend_slim.train import TrainConfig, Trainer
    from ascend_slim.train.builder import load_model

    config = TrainConfig(data=str(DATA / "VOCdevkit"), weights=str(DATA / "weights" / "yolov5n.pt"), classes="voc",
                         train_split="trainval", cache="ram", epochs=epochs, batch_size=batch_size, img_size=size,
                         workers=workers, device=device, save_dir=run_dir).validated()
    samples = load_samples(config.data, config.train_split)
    model = load_model(samples.names, weights=config.weights, classes=config.classes)
    train_set = DetectionDataset(samples, size, augment=True, hyp=config.hyp, cache="ram", seed=config.seed)
    trainer = Trainer(config, model, train_set, val_set=None)
    trainer.fit()
    timed = trainer.results.rows[1:] or trainer.results.rows
    per_epoch = [len(train_set) / row["time/epoch_s"] for row in timed]
    images_per_s = statistics.median(per_epoch)
    anchor = ANCHOR_IMAGES_PER_S.get(size)
    return {
        "img_size": size, "images": len(train_set), "batch_size": batch_size, "workers": workers,
        "device": str(trainer.device), "amp": trainer.amp, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch_threads": torch.get_num_threads(), "epochs_timed": len(timed),
        "images_per_s": round(images_per_s, 2), "images_per_s_per_epoch": [round(v, 2) for v in per_epoch],
        "data_wait_share": round(statistics.median(row["time/data_share"] for row in timed), 4),
        "anchor_images_per_s": anchor,
        "ratio_to_anchor": round(images_per_s / anchor, 3) if anchor and device == "cpu" else None,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="320,640", help="comma-separated image sizes (default 320,640)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per size; the first is not timed (default 3)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="loader processes (default 2, as the anchor)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", "unset"),
                   help="OpenMP idle threads sleep (PASSIVE), spin (ACTIVE) or spin a while, then sleep (unset: "
                        "the OpenMP default)")
    args = p.parse_args()
    # read when torch loads OpenMP, below
    if args.omp_wait_policy == "unset":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    from ascend_slim.report.machine import describe_cpu

    print(f"machine: {describe_cpu()}")
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as run_dir:
            r = measure(size, args.epochs, args.batch_size, args.workers, args.device, run_dir)
        results.append(r)
        ratio = f", {r['ratio_to_anchor']:.2f}x the Ultralytics anchor ({r['anchor_images_per_s']})" \
            if r["ratio_to_anchor"] is not None else ""
        print(f"{size}px: {r['images_per_s']:.1f} images/s on {r['device']} (per epoch {r['images_per_s_per_epoch']}), "
              f"waiting for data {100 * r['data_wait_share']:.1f}%{ratio}")
    write_json(args.json, {"benchmark": "train", "target_ratio": TARGET_RATIO, "results": results})


if __name__ == "__main__":
    main()
