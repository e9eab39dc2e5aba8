"""The flat parameter layout: every run's parameters are one row of an ``(R, P)`` array."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

__all__ = ["ParamEntry", "ParamLayout"]


@dataclass(frozen=True)
class ParamEntry:
    """One named parameter tensor inside the flat row: ``params[:, offset:offset + size]``."""

    name: str
    shape: tuple[int, ...]
    offset: int
    layer: str

    @property
    def size(self) -> int:
        return prod(self.shape)


class ParamLayout:
    """Names, shapes and offsets of the parameters, and the layers they belong to.

    Parameters of R runs live in one C-contiguous ``(R, P)`` array; each named tensor is a view
    ``(R, *shape)`` of it (row-major, as numpy reshapes). Descent rules see only the flat array.
    """

    def __init__(self, entries: list[tuple[str, tuple[int, ...], str]]):
        built, offset = [], 0
        for name, shape, layer in entries:
            entry = ParamEntry(name, tuple(int(s) for s in shape), offset, layer)
            built.append(entry)
            offset += entry.size
        self.entries: tuple[ParamEntry, ...] = tuple(built)
        self.size = offset
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(e.layer for e in built))

    def __repr__(self) -> str:
        inner = ", ".join(f"{e.name}{list(e.shape)}" for e in self.entries)
        return f"ParamLayout({inner}; P={self.size})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ParamLayout) and self.entries == other.entries

    def __hash__(self) -> int:
        return hash(self.entries)

    def entry(self, name: str) -> ParamEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def view(self, params: np.ndarray, name: str) -> np.ndarray:
        """The ``(R, *shape)`` view of one named tensor inside ``params`` (no copy)."""
        e = self.entry(name)
        return params[:, e.offset : e.offset + e.size].reshape(params.shape[0], *e.shape)

    def unflatten(self, params: np.ndarray) -> dict[str, np.ndarray]:
        """``{name: (R, *shape) view}`` for every tensor."""
        return {e.name: self.view(params, e.name) for e in self.entries}

    def flatten(self, tensors: dict[str, np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`unflatten`: stack named ``(R, *shape)`` tensors into ``(R, P)``."""
        runs = next(iter(tensors.values())).shape[0]
        out = np.empty((runs, self.size), dtype=np.result_type(*tensors.values()))
        for e in self.entries:
            out[:, e.offset : e.offset + e.size] = np.asarray(tensors[e.name]).reshape(runs, e.size)
        return out

    def layer_slices(self) -> list[tuple[str, list[slice]]]:
        return [
            (layer, [slice(e.offset, e.offset + e.size) for e in self.entries if e.layer == layer])
            for layer in self.layers
        ]

    def layer_norms(self, flat: np.ndarray) -> np.ndarray:
        """Euclidean norm of each layer's part of ``flat`` (``(R, P)`` -> ``(R, n_layers)``)."""
        if flat.shape[0] == 1:
            # numpy's einsum sums a lone row with another kernel than a stack's rows: as the first of
            # a pair, a run's norms are the same bits alone in its chunk as beside others
            return self.layer_norms(np.concatenate([flat, flat]))[:1]
        out = np.empty((flat.shape[0], len(self.layers)), dtype=flat.dtype)
        for j, (_, slices) in enumerate(self.layer_slices()):
            out[:, j] = np.sqrt(sum(np.einsum("rp,rp->r", flat[:, s], flat[:, s]) for s in slices))
        return out

    def describe(self) -> list[dict]:
        """Rows ``{name, shape, offset, size, layer}`` for docs, records and the dashboard."""
        return [
            {"name": e.name, "shape": list(e.shape), "offset": e.offset, "size": e.size, "layer": e.layer}
            for e in self.entries
        ]
