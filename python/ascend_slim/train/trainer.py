"""The training engine: ``Trainer(config, model, train_set, val_set, callbacks).fit()``.

One loop serves training from official weights, from a yaml, sparsity training and finetuning; the
differences are callbacks (:mod:`ascend_slim.train.callbacks`). Per batch: uint8 images to float on the
device, forward in channels-last memory format (faster convolutions on CPU and GPU) under autocast
(float16 on CUDA, see :func:`autocast_dtype`), the
:class:`~ascend_slim.train.loss.YoloLoss` plus callback terms, backward through the GradScaler; gradients
are accumulated to the nominal batch of 64 and every optimiser step is ``unscale_`` -> ``after_backward``
callbacks -> clip the gradient norm at 10 -> step -> EMA update. Each epoch also ends on an optimiser step
over the batches accumulated so far (YOLOv5 instead drops them at the next epoch's ``zero_grad``), so a
checkpoint never holds half-accumulated gradients.

Per epoch the main rank validates the EMA weights with the evaluation module (YOLOv5 ``val.py`` protocol,
:data:`ascend_slim.evaluation.VAL_SETTINGS`), appends a row to ``results.csv``,
redraws ``results.png`` and writes ``weights/last.pt`` (and ``best.pt`` when the fitness
``0.1·mAP@0.5 + 0.9·mAP@0.5:0.95`` improves), each atomically. A checkpoint's inference weights are the EMA's;
its ``training`` dict holds the raw model, optimiser, GradScaler, EMA update count, epoch, RNG states,
best fitness, config and callback states, so a run killed at any moment resumes from the last finished
epoch (:meth:`Trainer.restore`) and reproduces an uninterrupted run. ``best.pt`` holds inference weights only;
when the run ends, the training state is stripped from ``last.pt`` too.

Note: with the default VOC split (validation on ``test``), best.pt is selected on the test images; quote
accuracy from last.pt (or validate on a held-out split) to keep test figures unbiased.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import clip_grad_norm_
from tqdm import tqdm

from ..data.dataset import DetectionDataset
from ..data.loader import build_loader, set_epoch
from ..detector import Detector
from ..errors import AscendSlimError
from ..evaluation import VAL_SETTINGS, EvalDataset, evaluate
from ..model.checkpoint import load_training_state, load_weights, save_checkpoint
from ..model.yolo import YOLOv5
from ..runtime.torch_backend import TorchBackend
from .callbacks import Callback, TrainBatch
from .config import TrainConfig
from .distributed import DistContext, init_distributed, wrap_model
from .ema import ModelEMA
from .loss import YoloLoss
from .optim import Schedule, build_optimizer, scaled_weight_decay
from .results import ResultsLog

GRAD_CLIP_NORM = 10.0
FITNESS_WEIGHTS = {"mAP_0.5": 0.1, "mAP_0.5:0.95": 0.9}  # YOLOv5 ``utils/metrics.py::fitness``
LOSS_NAMES = ("box_loss", "obj_loss", "cls_loss")


@dataclass
class EpochTiming:
    """Wall-clock split of one training epoch (main rank)."""

    data_s: float = 0.0  # waiting for the loader
    total_s: float = 0.0

    @property
    def data_share(self) -> float:
        return self.data_s / self.total_s if self.total_s else 0.0


class Trainer:
    """Trains ``model`` (a :class:`YOLOv5`) on ``train_set`` (an augmenting :class:`DetectionDataset`) and
    validates on ``val_set`` (anything :func:`ascend_slim.evaluation.evaluate` reads, e.g.
    ``SampleSet.eval_dataset()``; None: no validation); ``config`` as :meth:`TrainConfig.validated` returns it
    (the builders in :mod:`ascend_slim.train.builder` pass it so). See the module docstring."""

    def __init__(self, config: TrainConfig, model: YOLOv5, train_set: DetectionDataset,
                 val_set: EvalDataset | None = None, callbacks: Sequence[Callback] = ()) -> None:
        self.ctx: DistContext = init_distributed(config.device)
        ctx = self.ctx
        if config.batch_size % ctx.world_size:
            raise AscendSlimError(f"batch size {config.batch_size} is not a multiple of the {ctx.world_size} "
                                  "processes")
        stride = int(max(model.strides))
        if config.img_size % stride:
            raise AscendSlimError(f"image size {config.img_size} is not a multiple of the model stride {stride}")
        if len(train_set.samples.names) != model.nc:
            raise AscendSlimError(f"the data has {len(train_set.samples.names)} classes but the model predicts "
                                  f"{model.nc}")
        seed_everything(config.seed + ctx.rank)
        self.config, self.hyp = config, config.hyp
        self.device = ctx.device
        self.is_main = ctx.is_main
        self.epochs = config.epochs
        self.save_dir = Path(config.save_dir)
        self.train_set, self.val_set = train_set, val_set
        self.callbacks = list(callbacks)

        self.model = model.float().to(self.device, memory_format=torch.channels_last).train()
        self.history_before = list(model.history)
        self.ema = ModelEMA(self.model) if self.is_main else None
        self.train_model = wrap_model(self.model, ctx, config.sync_bn)
        self.loader = build_loader(train_set, batch_size=config.batch_size // ctx.world_size,
                                   workers=config.workers, shuffle=True, seed=config.seed,
                                   distributed=ctx.distributed)
        self.batches_per_epoch = len(self.loader)
        self.optimizer = build_optimizer(self.model, config.optimizer, self.hyp["lr0"], self.hyp["momentum"],
                                         scaled_weight_decay(self.hyp["weight_decay"], config.batch_size))
        self.schedule = Schedule.from_hyp(self.hyp, config.epochs, self.batches_per_epoch, config.batch_size,
                                          config.cos_lr)
        self.amp_dtype = autocast_dtype(self.device) if config.amp else None
        self.amp = self.amp_dtype is not None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.loss = YoloLoss(self.model, config.img_size, self.hyp)

        self.epoch = self.start_epoch = 0
        self.best_fitness: float | None = None
        self.results = ResultsLog()
        self.timing = EpochTiming()

    # -- the loop -----------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train from ``start_epoch`` to ``config.epochs``; returns the last epoch's results row (main rank)."""
        for cb in self.callbacks:
            cb.on_fit_start(self)
        row: dict[str, float] = {}
        for epoch in range(self.start_epoch, self.epochs):
            self.epoch = epoch
            self.model.train()  # before the hooks: one may put modules back in eval mode (frozen BN statistics)
            for cb in self.callbacks:
                cb.on_epoch_start(self, epoch)
            losses = self._train_epoch(epoch)
            if self.is_main:
                row = self._end_epoch(epoch, losses)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, row)
        if self.is_main:
            self._strip_training_state()
            for cb in self.callbacks:
                cb.on_fit_end(self)
        return row

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The training model's raw heads for a batch of uint8 (0..255) or float (0..1) RGB images.

        The model is the DDP wrapper when distributed; callbacks use this for batches of their own.
        """
        return self.train_model(self._as_input(images))

    def _as_input(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True)
        x = x if x.is_floating_point() else x.float().div_(255)
        return x.contiguous(memory_format=torch.channels_last)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the loader (the model is in training mode); the epoch's mean loss terms (and callback
        items)."""
        set_epoch(self.loader, epoch)
        nb = self.batches_per_epoch
        sums: dict[str, float] = {}
        timing = EpochTiming()
        bar = tqdm(total=nb, desc=f"epoch {epoch}/{self.epochs - 1}", unit="batch", disable=not self.is_main,
                   dynamic_ncols=True)
        self.optimizer.zero_grad(set_to_none=True)
        last_step = -1
        start = time.perf_counter()
        batches = iter(self.loader)
        for i in range(nb):
            t0 = time.perf_counter()
            images, targets, paths, _ = next(batches)
            timing.data_s += time.perf_counter() - t0
            ni = i + nb * epoch
            self.schedule.apply(self.optimizer, ni, epoch)
            step = i - last_step >= self.schedule.accumulate(ni) or i == nb - 1
            no_sync = self.ctx.distributed and not step
            with self.train_model.no_sync() if no_sync else nullcontext():
                items = self._forward_backward(images, targets, paths)
            if step:
                self._optimizer_step()
                last_step = i
            for key, value in items.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix({k.removesuffix("_loss"): f"{v / (i + 1):.4g}" for k, v in sums.items()}
                            | {"objects": targets.shape[0]}, refresh=False)
            bar.update()
        bar.close()
        timing.total_s = time.perf_counter() - start
        self.timing = timing
        return {key: value / nb for key, value in sums.items()}

    def _forward_backward(self, images: torch.Tensor, targets: torch.Tensor, paths: list[str]) -> dict[str, float]:
        targets = targets.to(self.device, non_blocking=True)
        images = self._as_input(images)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            heads = self.train_model(images)
            loss, loss_items = self.loss(heads, targets)
            items = dict(zip(LOSS_NAMES, loss_items.tolist()))
            if self.callbacks:
                batch = TrainBatch(images=images, targets=targets, heads=heads, paths=paths)
                for cb in self.callbacks:
                    extra = cb.extra_loss(self, batch)
                    if extra is not None:
                        term, extra_items = extra
                        loss = loss + term
                        items.update({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                                      for k, v in extra_items.items()})
        if self.ctx.distributed:
            loss = loss * self.ctx.world_size  # DDP averages gradients over ranks; YOLOv5 scales the same way
        self.scaler.scale(loss).backward()
        return items

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        for cb in self.callbacks:
            cb.after_backward(self)
        clip_grad_norm_(self.model.parameters(), max_norm=GRAD_CLIP_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

    # -- end of epoch (main rank) ---------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """VOC metrics of the EMA weights on ``val_set`` (the YOLOv5 ``val.py`` protocol)."""
        backend = TorchBackend.from_model(self.ema.ema, self.config.img_size, str(self.device))
        with Detector(backend=backend, **VAL_SETTINGS) as detector:
            result = evaluate(detector, self.val_set, progress=True)
        return {"mAP_0.5_voc07": result.means["ap50_voc07"], "mAP_0.5": result.means["ap50"],
                "mAP_0.5:0.95": result.means["ap50_95"]}

    def _end_epoch(self, epoch: int, losses: dict[str, float]) -> dict[str, float]:
        row = {"epoch": float(epoch), **{f"train/{k}": v for k, v in losses.items()}}
        fitness = None
        if self.val_set is not None and (not self.config.noval or epoch + 1 == self.epochs):
            metrics = self.validate()
            fitness = sum(w * metrics[k] for k, w in FITNESS_WEIGHTS.items())
            row.update({f"metrics/{k}": v for k, v in metrics.items()}, fitness=fitness)
            tqdm.write("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        row.update({f"lr/pg{j}": group["lr"] for j, group in enumerate(self.optimizer.param_groups)})
        row.update({"time/epoch_s": self.timing.total_s, "time/data_share": self.timing.data_share})
        for cb in self.callbacks:
            row.update(cb.epoch_metrics(self, epoch))
        self.results.append(row)
        self.results.write_csv(self.save_dir / "results.csv")
        self.results.plot(self.save_dir / "results.png")
        is_best = fitness is not None and (self.best_fitness is None or fitness > self.best_fitness)
        if is_best:
            self.best_fitness = fitness
        self._save(epoch, is_best)
        return row

    @property
    def last_path(self) -> Path:
        return self.save_dir / "weights" / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.save_dir / "weights" / "best.pt"

    def _save(self, epoch: int, is_best: bool) -> None:
        training = {
            "epoch": epoch,
            "best_fitness": self.best_fitness,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema_updates": self.ema.updates,
            "rng": _rng_state(),
            "config": asdict(self.config),
            "history": self.history_before,
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks if cb.name},
        }
        record = {"action": "train", "data": self.config.data, "train_split": self.config.train_split,
                  "epochs": epoch + 1, "of_epochs": self.epochs, "img_size": self.config.img_size,
                  "batch_size": self.config.batch_size, "optimizer": self.config.optimizer,
                  "seed": self.config.seed, "best_fitness": self.best_fitness}
        history = [*self.history_before, record]
        save_checkpoint(self.last_path, self.ema.ema, self.config.img_size, history=history, training=training)
        if is_best:
            save_checkpoint(self.best_path, self.ema.ema, self.config.img_size, history=history)

    def _strip_training_state(self) -> None:
        """Rewrite last.pt without its training state (a finished run holds inference weights only)."""
        if self.last_path.is_file():
            model, info = load_weights(self.last_path)
            save_checkpoint(self.last_path, model, info["img_size"], history=info["history"])

    # -- resume ---------------------------------------------------------------------------------------
    def restore(self, checkpoint: str | Path) -> None:
        """Continue the run saved in ``checkpoint`` (a ``last.pt`` with training state) after its last epoch.

        Restores the raw and EMA weights, optimiser, GradScaler, best fitness, RNG states (main rank),
        callback states (by ``name``) and the rows of ``results.csv`` before the resumed epoch.
        """
        state = load_training_state(checkpoint)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict({"updates": state["ema_updates"], "weights": state["ema_weights"]})
            _set_rng_state(state["rng"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best_fitness = state["best_fitness"]
        self.history_before = list(state["history"])
        self.results = ResultsLog.read(self.save_dir / "results.csv", before_epoch=self.start_epoch)
        saved = state["callbacks"]
        for cb in self.callbacks:
            if cb.name and cb.name in saved:
                cb.load_state_dict(saved[cb.name])
        missing = sorted(set(saved) - {cb.name for cb in self.callbacks})
        if missing:
            raise AscendSlimError(f"{checkpoint} was trained with callbacks {missing} that this run lacks: resume "
                                  "it with the same options")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision type for ``device``: float16 on CUDA (with a GradScaler), None (float32) elsewhere.

    Weights, optimiser state, BatchNorm statistics and the loss stay float32. CPU bfloat16 autocast was
    measured and left out: on this project's AMX CPU, whole epochs of yolov5n ran 1.5-3x slower than float32
    (round-robin epochs on the shared machine) although isolated steps were up to 1.6x faster.
    """
    return torch.float16 if device.type == "cuda" else None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    """Global generator states as tensors and plain numbers (``weights_only`` loadable)."""
    _, mt_key, mt_pos, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(mt_key.astype(np.int64)), "pos": int(mt_pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": python_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
