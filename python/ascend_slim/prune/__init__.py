"""Pruning: channel groups from the model structure, importance, planner, surgery; unstructured magnitude."""

from .groups import ChannelGraph, build_graph
from .importance import BNScaleImportance, FilterNormImportance, Importance, get_importance
from .planner import PrunePlan, Thresholds, layer_table
from .pruner import PruneResult, prune_channels
from .surgery import mask_model, prune_model

__all__ = ["BNScaleImportance", "ChannelGraph", "FilterNormImportance", "Importance", "PrunePlan", "PruneResult",
           "Thresholds", "build_graph", "get_importance", "layer_table", "mask_model", "prune_channels",
           "prune_model"]
