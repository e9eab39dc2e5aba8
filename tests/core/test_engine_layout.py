"""The flat parameter layout: documented names, shapes and order; views; round trips; loading elsewhere."""

import numpy as np
import pytest

from descentlab import MLP, ParamLayout


def test_documented_order_names_and_shapes():
    model = MLP([2, 5, 3, 1])
    rows = model.layout.describe()
    assert [(r["name"], tuple(r["shape"]), r["layer"]) for r in rows] == [
        ("W1", (2, 5), "layer1"),
        ("b1", (5,), "layer1"),
        ("W2", (5, 3), "layer2"),
        ("b2", (3,), "layer2"),
        ("W3", (3, 1), "layer3"),
        ("b3", (1,), "layer3"),
    ]
    offsets = np.cumsum([0] + [r["size"] for r in rows])
    assert [r["offset"] for r in rows] == offsets[:-1].tolist()
    assert model.layout.size == offsets[-1] == 2 * 5 + 5 + 5 * 3 + 3 + 3 * 1 + 1
    assert model.layout.layers == ("layer1", "layer2", "layer3")


def test_views_are_row_major_and_share_memory():
    layout = MLP([3, 4, 2]).layout
    params = np.arange(2 * layout.size, dtype=float).reshape(2, layout.size)
    w1 = layout.view(params, "W1")
    assert w1.shape == (2, 3, 4) and np.shares_memory(w1, params)
    # W1[r, i, j] sits at params[r, offset(W1) + i * n_out + j] (numpy's C order).
    for r, i, j in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        assert w1[r, i, j] == params[r, i * 4 + j]
    b1 = layout.view(params, "b1")
    assert b1[1, 3] == params[1, 12 + 3]
    w1[0, 0, 0] = -1.0  # writing through a view changes the flat array
    assert params[0, 0] == -1.0


def test_flatten_unflatten_round_trip():
    layout = MLP([4, 6, 6, 3]).layout
    rng = np.random.default_rng(0)
    params = rng.standard_normal((5, layout.size))
    tensors = {k: v.copy() for k, v in layout.unflatten(params).items()}
    again = layout.flatten(tensors)
    assert again.flags.c_contiguous and again.tobytes() == params.tobytes()
    assert layout.unflatten(again).keys() == tensors.keys()


def test_layout_equality_and_scalar_entries():
    a = ParamLayout([("x", (), "point"), ("y", (), "point")])
    assert a.size == 2 and a == ParamLayout([("x", (), "point"), ("y", (), "point")])
    params = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert a.view(params, "y").tolist() == [2.0, 4.0]
    with pytest.raises(KeyError):
        a.entry("z")


def test_weights_load_elsewhere_with_plain_matrix_products():
    """The README's recipe: the forward pass rebuilt from the flat row with nothing but numpy."""
    model = MLP([2, 4, 3], activation="tanh", loss="softmax_ce")
    rng = np.random.default_rng(1)
    params = model.init_params([0, 1]) + 0.1 * rng.standard_normal((2, model.layout.size))
    x = rng.standard_normal((6, 2))
    for r in range(2):
        row = params[r]
        w1, b1 = row[0:8].reshape(2, 4), row[8:12]
        w2, b2 = row[12:24].reshape(4, 3), row[24:27]
        logits = np.tanh(x @ w1 + b1) @ w2 + b2
        np.testing.assert_allclose(model.forward(params, x)[r], logits, rtol=1e-14)
