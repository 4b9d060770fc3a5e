"""The plan's cut levels count channels removed after rounding, for the scored model and for its timed shape; the
pseudo-label Taylor criterion is one of the plan's importances and needs images."""

from __future__ import annotations

from pathlib import Path

import pytest
from prune_cases import random_bn_model

from ascend_slim.errors import AscendSlimError
from ascend_slim.recipes.slim_plan import CandidateModels


def test_cut_levels_are_what_they_remove(tmp_path: Path) -> None:
    original = random_bn_model("yolov5n", seed=2, nc=3)
    models = CandidateModels(original, tmp_path, importance="slim", round_to=16, progress=False)
    bns = {u.bn for u in models.graph.units.values()}
    for cut in (0.02, 0.1):
        plan = models.cut_plan(cut)
        assert plan.percent >= cut and plan.reached["level"] == cut
        assert all(k.numel() % 16 == 0 or k.numel() == g.width for k, g in zip(plan.keep, models.graph.groups))
        shape = models.pruned(cut, shape_only=True)
        widths = [sum(m.get_submodule(bn).num_features for bn in bns) for m in (original, shape)]
        assert widths[1] <= (1 - cut) * widths[0]  # the timed shape removes the level too
    assert models.cut_plan(0.02).percent < models.cut_plan(0.1).percent <= 0.2
    with pytest.raises(AscendSlimError, match="taylor importance needs images"):
        CandidateModels(original, tmp_path, importance="taylor").cut_plan(0.1)
