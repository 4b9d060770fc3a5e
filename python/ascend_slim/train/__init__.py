"""The training engine (torch only): YOLOv5-exact loss, optimiser and schedule, EMA, the ``Trainer`` with its
callbacks, checkpointed resume and torchrun DDP. Sparsity training and finetuning are the same ``Trainer``
with other callbacks."""
