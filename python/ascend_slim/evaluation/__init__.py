"""VOC evaluation: devkit-exact metrics, running a detector over a data set, detection files, report, plots."""

from .metrics import EvalResult, score_detections
from .runner import EvalDataset, detect_dataset, evaluate

__all__ = ["EvalDataset", "EvalResult", "detect_dataset", "evaluate", "score_detections"]
