"""Inference backends: each turns a preprocessed input tensor into the model's raw outputs."""
