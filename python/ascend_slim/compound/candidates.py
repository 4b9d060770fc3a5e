"""The compound search space: input size × channel cut × precision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import AscendSlimError
from ..limits import IMAGE_SIZE

SIZE_STEP = 32  # the largest YOLOv5 stride: every input size is a multiple of it
DEFAULT_SIZE_RANGE = (256, 640)
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True, order=True)
class Candidate:
    """One point of the space. ``cut`` is a channel-cut level, the fraction of prunable channels removed as the
    caller's pruning planner defines it (0 = the unpruned model); ``precision`` is ``fp32`` or ``int8``."""

    img_size: int
    cut: float = 0.0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if isinstance(self.img_size, bool) or int(self.img_size) != self.img_size or self.img_size % SIZE_STEP \
                or not IMAGE_SIZE[0] <= self.img_size <= IMAGE_SIZE[1]:
            raise AscendSlimError(f"candidate input size {self.img_size} must be a multiple of {SIZE_STEP} in "
                                  f"[{IMAGE_SIZE[0]}, {IMAGE_SIZE[1]}]")
        if not 0.0 <= self.cut < 1.0:
            raise AscendSlimError(f"channel cut {self.cut} must be a fraction in [0, 1)")
        if self.precision not in PRECISIONS:
            raise AscendSlimError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        object.__setattr__(self, "img_size", int(self.img_size))
        object.__setattr__(self, "cut", float(self.cut))

    @property
    def key(self) -> str:
        """Stable cache key, e.g. ``416-c0.1-int8`` (the cut written with up to 6 significant digits)."""
        return f"{self.img_size}-c{self.cut:.6g}-{self.precision}"

    @property
    def parent(self) -> Candidate | None:
        """The candidate this one derives from by one step: INT8 from its FP32 model, a cut from the uncut model
        at the same size; None for an uncut FP32 candidate."""
        if self.precision != "fp32":
            return Candidate(self.img_size, self.cut, "fp32")
        if self.cut:
            return Candidate(self.img_size)
        return None

    def to_dict(self) -> dict:
        return {"img_size": self.img_size, "cut": self.cut, "precision": self.precision}

    @classmethod
    def from_dict(cls, data: dict) -> Candidate:
        return cls(int(data["img_size"]), float(data["cut"]), str(data["precision"]))


def default_sizes(low: int = DEFAULT_SIZE_RANGE[0], high: int = DEFAULT_SIZE_RANGE[1]) -> tuple[int, ...]:
    """Every multiple of 32 in ``[low, high]``."""
    sizes = tuple(range(-(-low // SIZE_STEP) * SIZE_STEP, high + 1, SIZE_STEP))
    if not sizes:
        raise AscendSlimError(f"no multiple of {SIZE_STEP} lies in the size range [{low}, {high}]")
    return sizes


@dataclass(frozen=True)
class SearchSpace:
    """Sizes, cut levels (besides 0) and precisions to search; ``default_size`` is the original's own size,
    always searched: the original (``default_size``, no cut, FP32) is the reference for latency and mAP."""

    sizes: tuple[int, ...] = default_sizes()
    cuts: tuple[float, ...] = ()
    precisions: tuple[str, ...] = ("fp32",)
    default_size: int = 640

    def __post_init__(self) -> None:
        sizes = tuple(sorted(set(self.sizes) | {self.default_size}))
        for size in sizes:
            Candidate(size)  # validates
        cuts = tuple(sorted({float(c) for c in self.cuts} - {0.0}))
        for cut in cuts:
            Candidate(self.default_size, cut)
        if "fp32" not in self.precisions:
            raise AscendSlimError("the search needs fp32 among its precisions: INT8 candidates derive from FP32 ones")
        for precision in self.precisions:
            Candidate(self.default_size, 0.0, precision)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "cuts", cuts)
        object.__setattr__(self, "precisions", tuple(p for p in PRECISIONS if p in self.precisions))

    @property
    def original(self) -> Candidate:
        return Candidate(self.default_size)

    @property
    def int8(self) -> bool:
        return "int8" in self.precisions

    @classmethod
    def from_options(cls, sizes: Sequence[int] | None = None, cuts: Sequence[float] = (),
                     int8: bool = False, default_size: int = 640) -> SearchSpace:
        """The space from user options: ``sizes`` None means :func:`default_sizes`."""
        return cls(tuple(sizes) if sizes else default_sizes(), tuple(cuts), ("fp32", "int8") if int8 else ("fp32",),
                   default_size)

    def to_dict(self) -> dict:
        return {"sizes": list(self.sizes), "cuts": list(self.cuts), "precisions": list(self.precisions),
                "default_size": self.default_size}
