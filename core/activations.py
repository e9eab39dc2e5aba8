"""Activation functions, each with its forward rule and its backward rule side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["LEAKY_SLOPE", "Activation", "ACTIVATIONS"]

LEAKY_SLOPE = 0.01  # PyTorch's LeakyReLU default negative_slope


@dataclass(frozen=True)
class Activation:
    """``forward(z) -> a`` and ``backward(z, a, grad_a) -> grad_z`` (chain rule through a = f(z)).

    ``backward`` may overwrite ``grad_a`` (the engine hands it a temporary it no longer needs),
    which saves an allocation per layer and step. ``second(z, a) -> f''(z)`` is the curvature
    that exact Hessian-vector products need (Pearlmutter's R-operator, ``MLP.hessian_vector_product``).
    """

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    formula: str
    second: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _identity_forward(z):
    return z


def _identity_backward(z, a, grad_a):
    return grad_a


def _zero_second(z, a):  # piecewise linear: f'' = 0 (relu's kink has measure zero, as in autograd)
    return np.zeros_like(z)


def _tanh_forward(z):
    return np.tanh(z)


def _tanh_backward(z, a, grad_a):  # d tanh(z)/dz = 1 - tanh(z)^2
    slope = a * a
    np.subtract(1.0, slope, out=slope)
    grad_a *= slope
    return grad_a


def _tanh_second(z, a):  # d²tanh/dz² = −2 tanh (1 − tanh²)
    return -2.0 * a * (1.0 - a * a)


def _sigmoid_forward(z):
    # exp(-|z|) never overflows; the two branches are the same function written stably.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_backward(z, a, grad_a):  # σ'(z) = σ(z)(1 - σ(z))
    slope = 1.0 - a
    slope *= a
    grad_a *= slope
    return grad_a


def _sigmoid_second(z, a):  # σ'' = σ(1 − σ)(1 − 2σ)
    return a * (1.0 - a) * (1.0 - 2.0 * a)


def _relu_forward(z):
    return np.maximum(z, 0.0)


def _relu_backward(z, a, grad_a):  # 0 at z = 0, as PyTorch
    grad_a *= z > 0
    return grad_a


def _leaky_relu_forward(z):
    return np.where(z > 0, z, LEAKY_SLOPE * z)


def _leaky_relu_backward(z, a, grad_a):
    return grad_a * np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype)


def _softplus_forward(z):
    # log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}), which never overflows
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _softplus_backward(z, a, grad_a):  # softplus'(z) = σ(z)
    return grad_a * _sigmoid_forward(z)


def _softplus_second(z, a):  # softplus'' = σ'(z) = σ(1 − σ)
    s = _sigmoid_forward(z)
    return s * (1.0 - s)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", _identity_forward, _identity_backward, "f(z) = z", _zero_second),
        Activation("tanh", _tanh_forward, _tanh_backward, "f(z) = tanh z;  f' = 1 - f²", _tanh_second),
        Activation("sigmoid", _sigmoid_forward, _sigmoid_backward, "f(z) = 1/(1+e^-z);  f' = f(1-f)", _sigmoid_second),
        Activation("relu", _relu_forward, _relu_backward, "f(z) = max(z, 0);  f' = [z > 0]", _zero_second),
        Activation(
            "leaky_relu",
            _leaky_relu_forward,
            _leaky_relu_backward,
            f"f(z) = z if z > 0 else {LEAKY_SLOPE}z",
            _zero_second,
        ),
        Activation(
            "softplus", _softplus_forward, _softplus_backward, "f(z) = log(1+e^z);  f' = σ(z)", _softplus_second
        ),
    )
}
