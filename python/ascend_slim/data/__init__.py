"""Data sets shared by evaluation and training: Pascal VOC and YOLO-txt readers (torch-free)."""
