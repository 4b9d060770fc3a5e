"""torchrun DDP on the CPU: ``torchrun --nproc_per_node 2`` runs ``ascend-slim train`` with Gloo; the ranks end
with identical weights and rank 0's checkpoint holds rank 0's EMA weights."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import torch
from train_helpers import voc_subset

from ascend_slim.model.checkpoint import load_weights

# Runs the real CLI under torchrun and saves each rank's final weights (raw and, on rank 0, EMA) for the test.
WORKER = '''
import sys
import torch
from ascend_slim.cli import main
from ascend_slim.train import trainer as trainer_module

out = sys.argv[1]
fit = trainer_module.Trainer.fit

def fit_and_record(self):
    row = fit(self)
    params = {k: v.detach() for k, v in self.model.named_parameters()}  # BN running stats stay per rank
    torch.save({"world_size": self.ctx.world_size, "params": params,
                "ema": self.ema.ema.state_dict() if self.ema else None, "batches": self.batches_per_epoch},
               f"{out}/rank{self.ctx.rank}.pt")
    return row

trainer_module.Trainer.fit = fit_and_record
sys.exit(main(sys.argv[2:]))
'''


def model_params(weights: Path) -> list[str]:
    return [k for k, _ in load_weights(weights)[0].named_parameters()]


def test_torchrun_two_cpu_processes(voc_root: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    data = voc_subset(tmp_path / "voc", voc_root, 4)
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    project = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
               str(tmp_path), "train", "--data", str(data), "--weights", str(yolov5n_pt), "--classes", "voc",
               "--train-split", "subset", "--val-split", "subset", "--img", "160", "--batch-size", "4",
               "--epochs", "1", "--workers", "0", "--device", "cpu", "--project", str(project)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "(2 process(es))" in result.stdout

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["batches"] == rank1["batches"] == 1  # 4 images, 2 per rank
    assert rank1["ema"] is None  # only rank 0 keeps an EMA, validates and saves
    assert len(rank0["params"]) == len(list(model_params(yolov5n_pt)))
    for key, value in rank0["params"].items():
        torch.testing.assert_close(rank1["params"][key], value, rtol=0, atol=0)

    saved = torch.load(project / "exp" / "weights" / "last.pt", weights_only=True)
    for key, value in rank0["ema"].items():
        torch.testing.assert_close(saved["state_dict"][key], value, rtol=0, atol=0)
    model, info = load_weights(project / "exp" / "weights" / "last.pt")
    assert any((p - rank0["params"][k]).abs().max() > 0 for k, p in model.named_parameters())  # EMA != raw
    assert model.nc == 20 and info["history"][-1]["action"] == "train"
    with (project / "exp" / "results.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]
