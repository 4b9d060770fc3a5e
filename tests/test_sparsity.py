"""Sparsity training: the L1 subgradient reaches every prunable BN γ (residual groups included), is added to the
unscaled gradient (after ``unscale_``, so exact under a GradScaler), drives |γ| down, and logs per-epoch γ
statistics and histograms."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from train_helpers import small_config, voc_subset

from ascend_slim.distill.loss import TERMS
from ascend_slim.errors import AscendSlimError
from ascend_slim.model.checkpoint import load_training_state
from ascend_slim.prune.gamma import all_gammas, gamma_stats, prunable_batchnorms
from ascend_slim.prune.sparsity import SparsityRegularizer
from ascend_slim.train import optim
from ascend_slim.train.builder import build_trainer
from ascend_slim.train.callbacks import Callback


@pytest.fixture(scope="module")
def tiny_voc(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc4"), voc_root, 4)


class GradSpy(Callback):
    """Copies the BN weight and bias gradients whenever ``after_backward`` reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, torch.Tensor]]] = []  # (epoch, BN name -> [grad γ, grad β])

    def after_backward(self, trainer) -> None:
        self.seen.append((trainer.epoch, {name: torch.cat([bn.weight.grad.clone(), bn.bias.grad.clone()])
                                          for name, bn in prunable_batchnorms(trainer.model).items()}))


def test_every_conv_bn_is_prunable_and_detect_is_not(yolov5n_pt: Path) -> None:
    from ascend_slim.model.checkpoint import load_weights

    model, _ = load_weights(yolov5n_pt)
    names = set(prunable_batchnorms(model))
    all_bns = {n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert names == all_bns and len(names) == 57
    assert {"model.2.cv1.bn", "model.2.m.0.cv2.bn", "model.4.m.1.cv2.bn"} <= names  # a residual stream
    stats = gamma_stats(model)
    assert stats["small_gamma_fraction"] == 0.0  # official weights are not sparse
    assert 0.15 < stats["safety_bound"] < 1.0 and 0.1 < stats["max_safe_percent"] < 0.5


def test_l1_term_is_added_after_unscale_on_every_prunable_bn(tiny_voc: Path, yolov5n_pt: Path,
                                                             tmp_path: Path) -> None:
    rate, beta = 0.05, 10.0
    before, after = GradSpy(), GradSpy()
    sparsity = SparsityRegularizer(rate, decay=0.5, beta=beta, plots=False)
    config = small_config(tiny_voc, yolov5n_pt, tmp_path / "run", epochs=2, noval=True)
    trainer = build_trainer(config, callbacks=[before, sparsity, after])
    # a GradScaler that really scales (2^10) on the CPU: a term added before unscale_ would shrink 1024-fold
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=10**6)
    initial = {n: bn.weight.detach().clone() for n, bn in prunable_batchnorms(trainer.model).items()}
    trainer.fit()

    assert len(before.seen) == len(after.seen) >= 2
    for step, ((epoch, b), (_, a)) in enumerate(zip(before.seen, after.seen)):
        gamma_rate = rate * (1 - 0.5 * epoch / 2)
        for name, n in ((name, bn.num_features) for name, bn in prunable_batchnorms(trainer.model).items()):
            added = a[name] - b[name]
            torch.testing.assert_close(added[:n].abs(), torch.full((n,), gamma_rate), rtol=1e-4, atol=1e-7)
            torch.testing.assert_close(added[n:].abs(), torch.full((n,), beta * rate), rtol=1e-4, atol=1e-7)
            if step == 0:
                assert torch.equal(torch.sign(added[:n]), torch.sign(initial[name]))
    assert {epoch for epoch, _ in before.seen} == {0, 1}


def test_large_rate_shrinks_gammas_and_logs_each_epoch(tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optim, "MIN_WARMUP_ITERS", 0)  # two full-rate Adam steps, no warm-up

    def trained(callbacks: list[Callback], name: str):
        config = small_config(tiny_voc, yolov5n_pt, tmp_path / name, epochs=2, noval=True, optimizer="Adam",
                              hyp={"lr0": 0.1, "warmup_epochs": 0.0})
        trainer = build_trainer(config, callbacks=callbacks)
        trainer.fit()
        return trainer

    plain = trained([], "plain")
    sparsity = SparsityRegularizer(rate=10.0)
    sparse = trained([sparsity], "sparse")
    g_plain, g_sparse = all_gammas(plain.model), all_gammas(sparse.model)
    # Adam moves each γ by about lr per step; the L1 sign dominates every γ's gradient: two steps of -0.1
    assert g_sparse.mean() < g_plain.mean() - 0.1
    assert (g_sparse < g_plain).mean() > 0.9

    rows = list(csv.DictReader((tmp_path / "sparse" / "results.csv").open()))
    assert [float(r["sparsity/rate"]) for r in rows] == pytest.approx([10.0, 5.5])
    bounds = [float(r["sparsity/safety_bound"]) for r in rows]
    assert bounds[-1] == pytest.approx(gamma_stats(sparse.ema.ema)["safety_bound"], rel=1e-5)  # the EMA's
    folder = tmp_path / "sparse" / "sparsity"
    assert sorted(p.name for p in folder.iterdir()) == ["gamma_epoch000.png", "gamma_epoch001.png",
                                                        "gamma_histograms.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in folder.iterdir())
    assert [h["epoch"] for h in sparsity.history] == [0, 1]
    assert sum(sparsity.history[0]["counts"]) == g_sparse.size


def test_state_survives_a_checkpoint(tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    class Stop(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise KeyboardInterrupt

    sparsity = SparsityRegularizer(0.01, decay=0.3, beta=2.0)
    trainer = build_trainer(small_config(tiny_voc, yolov5n_pt, tmp_path / "run", epochs=2, noval=True),
                            callbacks=[sparsity, Stop()])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    restored = SparsityRegularizer.from_state(load_training_state(trainer.last_path)["callbacks"]["sparsity"])
    assert (restored.rate, restored.decay, restored.beta) == (0.01, 0.3, 2.0)
    assert restored.history == sparsity.history and restored.edges == sparsity.edges


@pytest.mark.parametrize("kwargs", [{"rate": 0.0}, {"rate": 1e-3, "decay": 1.5}, {"rate": 1e-3, "beta": -1.0}])
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(AscendSlimError):
        SparsityRegularizer(**kwargs)


def test_train_cli_sparsity_and_distillation_flags(tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    from ascend_slim.cli import main

    code = main(["train", "--weights", str(yolov5n_pt), "--classes", "voc", "--data", str(tiny_voc),
                 "--train-split", "subset", "--val-split", "subset", "--epochs", "1", "--batch-size", "2", "--img",
                 "160", "--workers", "0", "--device", "cpu", "--noval", "--st", "--sr", "0.01", "--distill",
                 str(yolov5n_pt), "--distill-weight", "2", "--project", str(tmp_path), "--name", "run"])
    assert code == 0
    row = next(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert float(row["sparsity/rate"]) == 0.01
    # --distill took part: each term is logged, and positive (the student in train mode normalises with batch
    # statistics, the frozen teacher with its running ones, so they differ even from the same weights)
    assert all(0 < float(row[f"train/{term}"]) < float("inf") for term in TERMS), row
    assert (tmp_path / "run" / "sparsity" / "gamma_histograms.png").is_file()
