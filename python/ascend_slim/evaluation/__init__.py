"""VOC evaluation: devkit-exact metrics, the validation protocol, running a detector or a model file over a
data set, detection files, report, plots."""

from .metrics import EvalResult, score_detections
from .protocol import HEADLINE_METRICS, VAL_SETTINGS, FileEvaluation, evaluate_file, evaluation_set, headline_metrics
from .runner import EvalDataset, detect_dataset, evaluate

__all__ = ["HEADLINE_METRICS", "VAL_SETTINGS", "EvalDataset", "EvalResult", "FileEvaluation", "detect_dataset",
           "evaluate", "evaluate_file", "evaluation_set", "headline_metrics", "score_detections"]
