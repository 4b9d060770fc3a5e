"""VOC evaluation: data set reading, devkit-exact metrics, detection files, report and plots."""
