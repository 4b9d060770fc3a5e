"""pyACL backend: load an ``.om``, execute it synchronously, copy the three FP32 heads back.

With an AIPP model (input = NV12 of model size, ``h*w*3/2`` bytes) it takes the letterboxed RGB uint8 image and
converts it to full-range NV12 on the host; without AIPP (``3*h*w*4`` bytes) it takes the float32 NCHW RGB/255
tensor. Which of the two is decided from the model's input size.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..ascend.aipp import rgb_to_nv12
from ..ascend.model_facts import head_shapes, om_meta
from ..ascend.sdk import import_sdk
from ..errors import AscendSlimError
from .base import Backend

# ACL enum values (acl.h): malloc policy, memcpy kinds, run modes, data types.
ACL_MEM_MALLOC_NORMAL_ONLY = 2
ACL_MEMCPY_HOST_TO_DEVICE = 1
ACL_MEMCPY_DEVICE_TO_HOST = 2
ACL_MEMCPY_DEVICE_TO_DEVICE = 3
ACL_HOST = 1
ACL_FLOAT = 0


def _status(result: object, what: str) -> None:
    ret = result[-1] if isinstance(result, tuple) else result
    if ret != 0:
        raise AscendSlimError(f"pyACL {what} failed with error code {ret}")


def _value(result: tuple, what: str):
    value, ret = result
    _status(ret, what)
    return value


class AclBackend(Backend):
    """Runs an ascend-slim ``.om`` through pyACL on one device (batch 1 per execute)."""

    name = "acl"

    def __init__(self, om: str | Path, device_id: int = 0) -> None:
        (self._acl,) = import_sdk("acl", "acl")
        self.meta = om_meta(om)
        self._resources = ExitStack()
        try:
            self._open(Path(om), device_id)
        except BaseException:
            self.close()
            raise

    def _open(self, om: Path, device_id: int) -> None:
        acl, push = self._acl, self._resources.callback
        _status(acl.init(), "acl.init")
        push(acl.finalize)
        _status(acl.rt.set_device(device_id), f"acl.rt.set_device({device_id})")
        push(acl.rt.reset_device, device_id)
        context = _value(acl.rt.create_context(device_id), "acl.rt.create_context")
        push(acl.rt.destroy_context, context)
        on_host = _value(acl.rt.get_run_mode(), "acl.rt.get_run_mode") == ACL_HOST
        self._to_device = ACL_MEMCPY_HOST_TO_DEVICE if on_host else ACL_MEMCPY_DEVICE_TO_DEVICE
        self._to_host = ACL_MEMCPY_DEVICE_TO_HOST if on_host else ACL_MEMCPY_DEVICE_TO_DEVICE
        self._model_id = _value(acl.mdl.load_from_file(str(om)), f"acl.mdl.load_from_file({om})")
        push(acl.mdl.unload, self._model_id)
        desc = acl.mdl.create_desc()
        push(acl.mdl.destroy_desc, desc)
        _status(acl.mdl.get_desc(desc, self._model_id), "acl.mdl.get_desc")
        self._check_model(om, desc)
        self._input, self._input_ds = self._dataset([self._input_size])
        self._outputs, self._output_ds = self._dataset(self._output_sizes)

    def _check_model(self, om: Path, desc: object) -> None:
        acl, meta = self._acl, self.meta
        h, w = meta.img_size
        inputs = acl.mdl.get_num_inputs(desc)
        if inputs != 1:
            raise AscendSlimError(f"{om} has {inputs} inputs; convert it with static AIPP or without AIPP")
        self._input_size = acl.mdl.get_input_size_by_index(desc, 0)
        if self._input_size == h * w * 3 // 2:
            self.input_dtype, self.input_layout, self.aipp = np.uint8, "NHWC", True
        elif self._input_size == 3 * h * w * 4:
            self.input_dtype, self.input_layout, self.aipp = np.float32, "NCHW", False
        else:
            raise AscendSlimError(
                f"{om} input is {self._input_size} bytes, neither NV12 ({h * w * 3 // 2}) nor float32 NCHW "
                f"({3 * h * w * 4}) for {w}x{h}: the model facts do not belong to this .om"
            )
        expected = head_shapes(meta)
        shapes = []
        for i in range(acl.mdl.get_num_outputs(desc)):
            dims = tuple(_value(acl.mdl.get_output_dims(desc, i), "acl.mdl.get_output_dims")["dims"])
            if acl.mdl.get_output_data_type(desc, i) != ACL_FLOAT:
                raise AscendSlimError(f"{om} output {i} is not FP32: convert with --output_type=FP32")
            shapes.append(dims)
        if sorted(shapes) != sorted(expected):
            raise AscendSlimError(f"{om} outputs {shapes} are not the raw heads {expected} of its model facts")
        self._output_sizes = [acl.mdl.get_output_size_by_index(desc, i) for i in range(len(shapes))]
        # device output index and byte size of each head, in meta.strides order
        self._heads = [(shapes.index(shape), self._output_sizes[shapes.index(shape)]) for shape in expected]
        self._head_shapes = expected
        for (_, size), shape in zip(self._heads, expected):
            if size != int(np.prod(shape)) * 4:
                raise AscendSlimError(f"{om} output of shape {shape} has {size} bytes, expected FP32")

    def _dataset(self, sizes: list[int]) -> tuple[list[int], object]:
        """Device buffers of ``sizes`` bytes wrapped in one ACL dataset."""
        acl, push = self._acl, self._resources.callback
        dataset = acl.mdl.create_dataset()
        push(acl.mdl.destroy_dataset, dataset)
        pointers = []
        for size in sizes:
            ptr = _value(acl.rt.malloc(size, ACL_MEM_MALLOC_NORMAL_ONLY), f"acl.rt.malloc({size})")
            push(acl.rt.free, ptr)
            buffer = acl.create_data_buffer(ptr, size)
            push(acl.destroy_data_buffer, buffer)
            _status(acl.mdl.add_dataset_buffer(dataset, buffer), "acl.mdl.add_dataset_buffer")
            pointers.append(ptr)
        return pointers, dataset

    def _model_input(self, image: np.ndarray) -> np.ndarray:
        if self.aipp:
            return rgb_to_nv12(image)
        return np.ascontiguousarray(image, dtype=np.float32)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        acl = self._acl
        h, w = self.meta.img_size
        expected = (h, w, 3) if self.aipp else (3, h, w)
        if tensor.ndim != 4 or tensor.shape[1:] != expected or tensor.dtype != self.input_dtype:
            raise AscendSlimError(
                f"acl backend expects a {np.dtype(self.input_dtype).name} batch of shape (N, *{expected}), "
                f"got {tensor.dtype} {tensor.shape}"
            )
        batches: list[list[np.ndarray]] = [[] for _ in self._heads]
        for image in tensor:
            data = self._model_input(image)
            _status(acl.rt.memcpy(self._input[0], self._input_size, acl.util.numpy_to_ptr(data), data.nbytes,
                                  self._to_device), "acl.rt.memcpy (input)")
            _status(acl.mdl.execute(self._model_id, self._input_ds, self._output_ds), "acl.mdl.execute")
            for k, ((index, size), shape) in enumerate(zip(self._heads, self._head_shapes)):
                host = np.empty(shape, np.float32)
                _status(acl.rt.memcpy(acl.util.numpy_to_ptr(host), size, self._outputs[index], size, self._to_host),
                        "acl.rt.memcpy (output)")
                batches[k].append(host)
        return [np.concatenate(parts) for parts in batches]

    def close(self) -> None:
        """Free buffers, unload the model and release the device (in reverse order of acquisition)."""
        resources = getattr(self, "_resources", None)
        if resources is not None:
            self._resources = ExitStack()
            resources.close()
