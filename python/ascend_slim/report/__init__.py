"""Measurements that compare model variants: latency side by side, the machine they ran on (torch-free)."""
