"""Figure JSON with plotly's typed arrays decoded: the numbers a test reads, however plotly sent them.

plotly 6+ serialises a trace's numpy arrays as ``{"dtype": "f8", "bdata": <base64>}`` instead of a
list (the figures pass arrays: docs/dev/speed.md). ``plain_json`` turns every such object back into
the list the figure drew — NaN as None, as plotly.js reads both as a gap and as the figures wrote
before — so assertions compare the same values whichever encoding a figure used.
"""

from __future__ import annotations

import base64
import json

import numpy as np

# plotly.js's short type names (plotly's _plotly_utils.utils.plotlyjsShortTypes, inverted)
_DTYPES = {
    "i1": np.int8,
    "u1": np.uint8,
    "i2": np.int16,
    "u2": np.uint16,
    "i4": np.int32,
    "u4": np.uint32,
    "f4": np.float32,
    "f8": np.float64,
}


def _decoded(value):
    if isinstance(value, dict):
        if set(value) in ({"dtype", "bdata"}, {"dtype", "bdata", "shape"}):
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=_DTYPES[value["dtype"]])
            if "shape" in value:
                array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
            listed = array.tolist()  # Python ints and floats, nested for a 2-D array
            if array.dtype.kind == "f":
                listed = _gaps(listed)
            return listed
        return {k: _decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _gaps(values):
    if isinstance(values, list):
        return [_gaps(v) for v in values]
    return None if values != values else values  # NaN -> None


def plain_json(figure) -> dict:
    """The JSON of ``figure`` (a plotly figure or its parsed JSON) with typed arrays as plain lists."""
    spec = json.loads(figure.to_json()) if hasattr(figure, "to_json") else figure
    return _decoded(spec)
