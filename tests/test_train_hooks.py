"""The Trainer's hooks: call order per optimiser step (after_backward after unscale_, before clipping, the step and
the EMA), unscaled gradients under a GradScaler, extra loss terms, epoch hooks, callback state in checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from train_helpers import small_config, voc_subset

from ascend_slim.errors import AscendSlimError
from ascend_slim.model.checkpoint import load_training_state
from ascend_slim.train import trainer as trainer_module
from ascend_slim.train.builder import build_trainer, resume_trainer
from ascend_slim.train.callbacks import Callback, TrainBatch


class RecordingScaler(torch.amp.GradScaler):
    """A real GradScaler (scale 2^10, enabled on the CPU) that logs its calls."""

    def __init__(self, log: list[str]) -> None:
        super().__init__("cpu", init_scale=2.0**10, growth_interval=10**6)
        self.log = log

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        self.log.append("unscale_")
        super().unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer, *args, **kwargs):
        self.log.append("step")
        return super().step(optimizer, *args, **kwargs)

    def update(self, new_scale=None) -> None:
        self.log.append("update")
        super().update(new_scale)


class Probe(Callback):
    """Logs every hook; adds ``weight · sum(first conv weights)`` as an extra loss; keeps the gradients it saw."""

    name = "probe"

    def __init__(self, log: list[str], weight: float = 0.5) -> None:
        self.log, self.weight = log, weight
        self.grads: list[torch.Tensor] = []
        self.metrics: list[dict[str, float]] = []
        self.restored: dict | None = None

    def on_fit_start(self, trainer) -> None:
        self.log.append("fit_start")

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.log.append(f"epoch_start {epoch}")

    def extra_loss(self, trainer, batch: TrainBatch):
        self.log.append("extra_loss")
        assert batch.images.dtype == torch.float32 and batch.images.max() <= 1.0
        assert len(batch.heads) == 3 and batch.targets.shape[1] == 6
        term = self.weight * trainer.model.model[0].conv.weight.sum() * batch.images.shape[0]
        return term, {"probe": float(term.detach())}

    def after_backward(self, trainer) -> None:
        self.log.append("after_backward")
        self.grads.append(trainer.model.model[-1].m[0].weight.grad.detach().clone())

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.log.append(f"epoch_end {epoch}")
        self.metrics.append(metrics)

    def on_fit_end(self, trainer) -> None:
        self.log.append("fit_end")

    def state_dict(self) -> dict:
        return {"weight": self.weight, "steps": len(self.grads)}

    def load_state_dict(self, state: dict) -> None:
        self.restored = state


@pytest.fixture(scope="module")
def tiny_voc(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc4"), voc_root, 4)


def instrumented_run(config, monkeypatch: pytest.MonkeyPatch, scaled: bool) -> tuple[list[str], Probe]:
    log: list[str] = []
    probe = Probe(log)
    trainer = build_trainer(config, callbacks=[probe])
    if scaled:
        trainer.scaler = RecordingScaler(log)

    def clip(params, max_norm):
        log.append(f"clip {max_norm:g}")
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    monkeypatch.setattr(trainer_module, "clip_grad_norm_", clip)
    ema_update = trainer.ema.update

    def update(model):
        log.append("ema")
        ema_update(model)

    trainer.ema.update = update
    trainer.fit()
    return log, probe


def test_hook_order_and_unscaled_gradients(tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = small_config(tiny_voc, yolov5n_pt, tmp_path / "scaled", epochs=2, noval=True)
    log, probe = instrumented_run(config, monkeypatch, scaled=True)

    steps = log.count("after_backward")
    assert steps == log.count("ema") >= 2
    assert log[:2] == ["fit_start", "epoch_start 0"] and log[-2:] == ["epoch_end 1", "fit_end"]
    assert log.count("extra_loss") == 4  # 2 batches x 2 epochs
    step_calls = [entry for entry in log if entry in ("unscale_", "after_backward", "clip 10", "step", "update", "ema")]
    assert step_calls == ["unscale_", "after_backward", "clip 10", "step", "update", "ema"] * steps
    # Every step happens after its batch's extra loss and before the next batch.
    assert log.index("after_backward") > log.index("extra_loss")

    # The gradients after_backward sees are the unscaled ones: equal to a run without loss scaling.
    ref_config = small_config(tiny_voc, yolov5n_pt, tmp_path / "plain", epochs=2, noval=True)
    _, reference = instrumented_run(ref_config, monkeypatch, scaled=False)
    assert len(reference.grads) == steps
    for scaled_grad, plain_grad in zip(probe.grads, reference.grads):
        torch.testing.assert_close(scaled_grad, plain_grad, rtol=1e-4, atol=1e-7)

    # Extra loss items are logged per epoch; on_epoch_end gets the results.csv row.
    assert probe.metrics[0]["epoch"] == 0 and "train/probe" in probe.metrics[0]
    with (tmp_path / "scaled" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert "train/probe" in rows[0] and float(rows[1]["train/probe"]) == pytest.approx(probe.metrics[1]["train/probe"],
                                                                                      rel=1e-5)
    assert "metrics/mAP_0.5" in rows[1] and rows[0]["metrics/mAP_0.5"] == ""  # --noval: only the last epoch


def test_callback_state_saved_and_required_on_resume(tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    class Stop(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise KeyboardInterrupt

    log: list[str] = []
    trainer = build_trainer(small_config(tiny_voc, yolov5n_pt, tmp_path / "run", epochs=2, noval=True),
                            callbacks=[Probe(log, weight=0.25), Stop()])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    state = load_training_state(trainer.last_path)
    assert state["callbacks"] == {"probe": {"weight": 0.25, "steps": log.count("after_backward")}}
    with pytest.raises(AscendSlimError, match=r"callbacks \['probe'\]"):
        resume_trainer(trainer.last_path)
    probe = Probe([])
    resume_trainer(trainer.last_path, callbacks=[probe])
    assert probe.restored == state["callbacks"]["probe"]
