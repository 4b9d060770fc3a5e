"""Recipes: multi-stage workflows built from the library (training, pruning, distillation, export, deploy)."""
