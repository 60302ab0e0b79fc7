"""Array backends: numpy (float64 reference) and torch (float32/float64, any device).

The model is written once against the array-API namespace (array_api_compat); this module holds the
few things that the standard leaves out — creating arrays on a device and scatter-adds — so that the
model code never branches on the library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace

BACKENDS = ("numpy", "torch")


@dataclass(frozen=True)
class Backend:
    name: str = "numpy"
    dtype: str = "float64"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"backend = {self.name!r} is invalid: must be one of {BACKENDS}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype = {self.dtype!r} is invalid: must be 'float32' or 'float64'")
        if self.name == "numpy" and self.device != "cpu":
            raise ValueError(f"device = {self.device!r} is invalid for numpy: must be 'cpu'")

    @property
    def xp(self):
        if self.name == "numpy":
            return array_namespace(np.zeros(0))
        import torch

        return array_namespace(torch.zeros(0))

    def _torch_dtype(self, kind: str):
        import torch

        return {"float": getattr(torch, self.dtype), "int": torch.int64, "bool": torch.bool}[kind]

    def asarray(self, values, kind: str = "float"):
        """Copy `values` into a backend array of kind 'float', 'int' or 'bool'."""
        if self.name == "numpy":
            dtype = {"float": self.dtype, "int": np.int64, "bool": bool}[kind]
            return np.array(values, dtype=dtype)
        import torch

        # np.require: a writable contiguous copy of read-only or broadcast views (torch warns on
        # non-writable arrays); the clone makes the tensor independent either way
        return torch.as_tensor(np.require(values, requirements=("C", "W")),
                               dtype=self._torch_dtype(kind), device=self.device).clone()

    def to_numpy(self, array) -> np.ndarray:
        if self.name == "numpy":
            return np.asarray(array)
        return array.detach().cpu().numpy()

    def add_at(self, target, index, values) -> None:
        """target[index] += values in place, summing repeated indices."""
        if self.name == "numpy":
            np.add.at(target, index, values)
        else:
            target.index_add_(0, index, values)

    def segment_sum(self, values, index, n: int):
        """out[k] = sum of values[i] over i with index[i] == k."""
        if self.name == "numpy":
            return np.bincount(index, weights=values, minlength=n).astype(values.dtype, copy=False)
        import torch

        out = torch.zeros(n, dtype=values.dtype, device=values.device)
        return out.index_add_(0, index, values)

