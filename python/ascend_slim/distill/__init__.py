"""Knowledge distillation from a frozen teacher on YOLOv5's raw heads: the loss and the training callback."""

from .callback import Distiller, load_teacher, unlabelled_samples
from .loss import HeadDistillation, bernoulli_kl

__all__ = ["Distiller", "HeadDistillation", "bernoulli_kl", "load_teacher", "unlabelled_samples"]
