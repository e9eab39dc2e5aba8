"""Initialisation: Glorot/He variances against their formulas, and seeds that give the same bits."""

import numpy as np
import pytest

from descentlab import MLP

FAN_IN, FAN_OUT = 400, 300  # one large layer: 120 000 draws make the sample variance precise


def first_layer(scheme, seeds=(0,), dtype=np.float64):
    model = MLP([FAN_IN, FAN_OUT, 1], activation="tanh", init=scheme)
    params = model.init_params(list(seeds), dtype)
    return model, model.layout.view(params, "W1")


@pytest.mark.parametrize(
    "scheme, variance",
    [
        ("glorot_uniform", 2.0 / (FAN_IN + FAN_OUT)),  # Glorot & Bengio (2010): Var = 2/(fan_in + fan_out)
        ("glorot_normal", 2.0 / (FAN_IN + FAN_OUT)),
        ("he_uniform", 2.0 / FAN_IN),  # He et al. (2015): Var = 2/fan_in
        ("he_normal", 2.0 / FAN_IN),
    ],
)
def test_weight_variance_and_distribution(scheme, variance):
    _, w = first_layer(scheme)
    w = w[0].ravel()
    n = w.size
    # Standard error of a sample variance: Var·sqrt((kurtosis − 1)/n); 5 standard errors of slack.
    kurtosis = 1.8 if scheme.endswith("uniform") else 3.0
    assert abs(w.var() / variance - 1.0) < 5 * np.sqrt((kurtosis - 1.0) / n)
    assert abs(w.mean()) < 5 * np.sqrt(variance / n)
    sample_kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2
    assert sample_kurtosis == pytest.approx(kurtosis, abs=0.05)  # tells uniform from normal
    if scheme.endswith("uniform"):
        bound = np.sqrt(3.0 * variance)  # U(−b, b) has variance b²/3
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.999 * bound


def test_biases_start_at_zero_and_later_layers_use_their_own_fans():
    model = MLP([400, 300, 200], activation="relu", init="he_normal")
    params = model.init_params([1])
    views = model.layout.unflatten(params)
    assert not views["b1"].any() and not views["b2"].any()
    assert views["W2"].var() == pytest.approx(2.0 / 300, rel=0.03)


def test_auto_picks_he_for_relu_and_glorot_otherwise():
    assert MLP([2, 3, 1], activation="relu").init == "he_uniform"
    assert MLP([2, 3, 1], activation="leaky_relu").init == "he_uniform"
    assert MLP([2, 3, 1], activation="tanh").init == "glorot_uniform"
    assert MLP([2, 3, 1], activation="sigmoid").init == "glorot_uniform"


def test_same_seed_same_bits_whatever_else_is_in_the_batch():
    model = MLP([2, 16, 16, 1], activation="tanh")
    alone = model.init_params([7])
    batch = model.init_params([3, 7, 11, 7])
    assert alone.tobytes() == batch[1].tobytes()
    assert batch[1].tobytes() == batch[3].tobytes()
    assert not np.array_equal(batch[0], batch[2])
    # A rerun (a fresh model object, as another rule's batch would build) gives the same bits.
    again = MLP([2, 16, 16, 1], activation="tanh").init_params([7])
    assert again.tobytes() == alone.tobytes()


def test_float32_initial_weights_are_the_float64_ones_rounded():
    model = MLP([3, 8, 2], activation="tanh")
    p64 = model.init_params([0, 1])
    p32 = model.init_params([0, 1], dtype=np.float32)
    assert p32.dtype == np.float32 and p32.flags.c_contiguous
    assert p32.tobytes() == p64.astype(np.float32).tobytes()
