"""The per-epoch log of a training run: ``results.csv`` (one row per epoch) and ``results.png`` (curves)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..fileio import atomic_write_bytes, atomic_write_text

# Column groups drawn in results.png: (title, column prefix).
PANELS = (("training losses", "train/"), ("validation mAP", "metrics/"), ("learning rate", "lr/"))


class ResultsLog:
    """Rows of per-epoch values (name -> number), written as CSV and plotted after every epoch."""

    def __init__(self, rows: list[dict[str, float]] | None = None) -> None:
        self.rows: list[dict[str, float]] = list(rows or [])

    @classmethod
    def read(cls, path: str | Path, before_epoch: int) -> ResultsLog:
        """The rows of an existing ``results.csv`` for epochs before ``before_epoch`` (none if it is missing)."""
        path = Path(path)
        if not path.is_file():
            return cls()
        with path.open(newline="") as f:
            rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
        return cls([row for row in rows if row.get("epoch", before_epoch) < before_epoch])

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(k for row in self.rows for k in row))

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)

    def write_csv(self, path: str | Path) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: int(v) if k == "epoch" else f"{v:.6g}" for k, v in row.items()})
        atomic_write_text(path, text.getvalue())

    def plot(self, path: str | Path) -> None:
        """One panel per column group (losses, mAPs, learning rates) against the epoch."""
        fig = Figure(figsize=(5 * len(PANELS), 4), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)  # Agg canvas of its own: no pyplot, no global backend
        axes = fig.subplots(1, len(PANELS))
        for ax, (title, prefix) in zip(axes, PANELS):
            for column in (c for c in self.columns if c.startswith(prefix)):
                points = [(row["epoch"], row[column]) for row in self.rows if column in row]
                ax.plot(*zip(*points), marker=".", label=column[len(prefix):])
            ax.set_title(title)
            ax.set_xlabel("epoch")
            if ax.has_data():
                ax.legend(fontsize="small")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        atomic_write_bytes(path, buf.getvalue())
