"""Data sets shared by evaluation and training.

Torch-free (the inference path imports these): ``voc`` (Pascal VOC layout and safe XML), ``yolo_txt``
(Ultralytics label files), ``samples`` (a training split from a VOCdevkit folder or an Ultralytics data yaml)
and ``augment`` (YOLOv5's augmentations in numpy/OpenCV). With torch: ``dataset`` (``DetectionDataset``:
letterboxed or augmented uint8 images and targets), ``loader`` (``build_loader``, DDP-aware, seeded) and
``unlabelled`` (images letterboxed into float tensors for label-free compression).
"""
