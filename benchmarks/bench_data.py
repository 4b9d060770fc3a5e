"""Augmented training images/s of the data loader (shared VOC trainval, batch 16, `cache="ram"`, hyp.scratch-low
augmentation: mosaic, scale/translate, HSV, flips) at 320 and 640 with 0 and 2 workers, measured round-robin
(one full epoch per configuration per round, medians), beside the rate the trainer must reach.

The trainer target is 1.2x Ultralytics `train.py` on this kind of machine (30 images/s at 320, 6.6 at 640, see
`../shared/data/README.md`). With `--workers 0` loading is serial with the training step, so the share of a
target-rate step spent loading is `target / loader rate`. "main CPU ms/img" is the CPU time of this process per
image (all of the loading with 0 workers; receiving batches with 2), less sensitive to a shared machine than
wall time.
"""

from __future__ import annotations

import statistics
import time

from _common import DATA, parser, write_json

from ascend_slim.data.dataset import DetectionDataset
from ascend_slim.data.loader import build_loader, set_epoch
from ascend_slim.data.samples import load_samples

ULTRALYTICS_TRAIN = {320: 30.0, 640: 6.6}  # images/s of Ultralytics v7.0 train.py, yolov5n, batch 16, cache ram
TARGET_GAIN = 1.2


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--img", type=int, nargs="+", default=[320, 640])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    samples = load_samples(DATA / "VOCdevkit", "trainval")
    loaders, cache = {}, {}
    for size in args.img:
        start = time.perf_counter()
        dataset = DetectionDataset(samples, size, augment=True, cache="ram")
        cache[size] = {"seconds": time.perf_counter() - start, "mb": dataset.cache_bytes / 1e6}
        for workers in args.workers:
            loaders[size, workers] = build_loader(dataset, args.batch_size, workers=workers)

    rates: dict[tuple[int, int], list[float]] = {key: [] for key in loaders}
    cpu_ms: dict[tuple[int, int], list[float]] = {key: [] for key in loaders}  # this process's CPU per image
    for epoch in range(args.rounds + 1):  # round 0 warms up (starts the persistent workers)
        for key, loader in loaders.items():
            set_epoch(loader, epoch)
            start, cpu = time.perf_counter(), time.process_time()
            n = sum(len(images) for images, _, _, _ in loader)
            if epoch:
                rates[key].append(n / (time.perf_counter() - start))
                cpu_ms[key].append((time.process_time() - cpu) / n * 1e3)

    print(f"{len(samples)} images, batch {args.batch_size}, {args.rounds} rounds (medians; machine may be shared)")
    for size, c in cache.items():
        print(f"cache at {size}: {c['mb']:.0f} MB in {c['seconds']:.1f} s")
    print(f"{'img':>5}{'workers':>9}{'images/s':>10}{'range':>16}{'main CPU ms/img':>17}{'target':>9}"
          f"{'headroom':>10}{'load share':>12}")
    results = []
    for (size, workers), values in rates.items():
        median, cpu = statistics.median(values), statistics.median(cpu_ms[size, workers])
        target = TARGET_GAIN * ULTRALYTICS_TRAIN.get(size, float("nan"))
        results.append({"img": size, "workers": workers, "images_per_s": median, "min": min(values),
                        "max": max(values), "main_process_cpu_ms_per_image": cpu,
                        "trainer_target_images_per_s": target, "headroom": median / target,
                        "load_share_at_target": target / median})
        print(f"{size:>5}{workers:>9}{median:>10.1f}{min(values):>8.1f}-{max(values):<7.1f}{cpu:>17.2f}{target:>9.1f}"
              f"{median / target:>9.1f}x{target / median:>12.0%}")
    write_json(args.json, {"batch_size": args.batch_size, "images": len(samples), "rounds": args.rounds,
                           "cache": cache, "results": results})


if __name__ == "__main__":
    main()
