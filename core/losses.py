"""Loss functions of a batch of outputs, each with its gradient with respect to those outputs.

Every loss maps outputs ``(R, N, k)`` and targets ``(N, k)`` or ``(R, N, k)`` to the mean loss
per run ``(R,)`` and its gradient ``(R, N, k)``. Conventions follow PyTorch's reductions
(``MSELoss``, ``BCEWithLogitsLoss``, ``CrossEntropyLoss`` with ``reduction="mean"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "Loss",
    "mse_value",
    "mse_value_and_grad",
    "mse_output_hvp",
    "half_mse_value",
    "half_mse_value_and_grad",
    "half_mse_output_hvp",
    "bce_value",
    "bce_value_and_grad",
    "bce_output_hvp",
    "softmax_ce_value",
    "softmax_ce_value_and_grad",
    "softmax_ce_output_hvp",
    "LOSSES",
    "accuracy",
]


@dataclass(frozen=True)
class Loss:
    """``value_and_grad(output, target) -> (loss (R,), grad (R, N, k))``; ``value`` skips the gradient.

    ``output_hvp(output, target, v) -> (R, N, k)`` is the Hessian of the loss with respect to the
    outputs applied to ``v``, the first step of an exact Hessian-vector product's backward pass.
    """

    name: str
    value_and_grad: Callable
    value: Callable
    formula: str
    task: str  # "regression" or "classification"
    output_hvp: Callable | None = None


def mse_value(output, target):
    diff = output - target
    return (diff * diff).mean(axis=(1, 2))


def mse_value_and_grad(output, target):
    """J = mean over samples and outputs of (ŷ - y)²; ∂J/∂ŷ = 2(ŷ - y)/(N k)."""
    diff = output - target
    n = diff.shape[1] * diff.shape[2]
    return (diff * diff).sum(axis=(1, 2)) / n, diff * (2.0 / n)


def mse_output_hvp(output, target, v):
    """∂²J/∂ŷ² = 2 I/(N k)."""
    return v * (2.0 / (output.shape[1] * output.shape[2]))


def half_mse_value(output, target):
    return 0.5 * mse_value(output, target)


def half_mse_value_and_grad(output, target):
    """J = ½ mean (ŷ - y)², the textbook cost of linear regression; ∂J/∂ŷ = (ŷ - y)/(N k)."""
    diff = output - target
    n = diff.shape[1] * diff.shape[2]
    return 0.5 * (diff * diff).sum(axis=(1, 2)) / n, diff * (1.0 / n)


def half_mse_output_hvp(output, target, v):
    """∂²J/∂ŷ² = I/(N k)."""
    return v * (1.0 / (output.shape[1] * output.shape[2]))


def _log1p_exp_neg_abs(z):
    return np.log1p(np.exp(-np.abs(z)))


def bce_value(logits, target):
    per_element = np.maximum(logits, 0.0) - logits * target + _log1p_exp_neg_abs(logits)
    return per_element.mean(axis=(1, 2))


def bce_value_and_grad(logits, target):
    """J = mean [softplus(z) - y z] (binary cross-entropy on logits z); ∂J/∂z = (σ(z) - y)/(N k)."""
    e = np.exp(-np.abs(logits))
    per_element = np.maximum(logits, 0.0) - logits * target + np.log1p(e)
    sigma = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    n = logits.shape[1] * logits.shape[2]
    return per_element.sum(axis=(1, 2)) / n, (sigma - target) * (1.0 / n)


def bce_output_hvp(logits, target, v):
    """∂²J/∂z² = diag σ(z)(1 − σ(z))/(N k)."""
    e = np.exp(-np.abs(logits))
    sigma = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return sigma * (1.0 - sigma) * v * (1.0 / (logits.shape[1] * logits.shape[2]))


def _log_softmax(logits):
    shifted = logits - logits.max(axis=2, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))


def softmax_ce_value(logits, target):
    return -(target * _log_softmax(logits)).sum(axis=2).mean(axis=1)


def softmax_ce_value_and_grad(logits, target):
    """J = -mean_n Σ_c y_nc log softmax(z_n)_c (targets one-hot or soft); ∂J/∂z = (softmax(z) - y)/N."""
    log_p = _log_softmax(logits)
    n = logits.shape[1]
    loss = -(target * log_p).sum(axis=(1, 2)) / n
    return loss, (np.exp(log_p) * target.sum(axis=-1, keepdims=True) - target) * (1.0 / n)


def softmax_ce_output_hvp(logits, target, v):
    """∂²J/∂z_n² = s_n (diag p_n − p_n p_nᵀ)/N with p = softmax(z) and s_n = Σ_c y_nc (1 for one-hot)."""
    p = np.exp(_log_softmax(logits))
    pv = p * v
    return (pv - p * pv.sum(axis=2, keepdims=True)) * target.sum(axis=-1, keepdims=True) * (1.0 / logits.shape[1])


LOSSES: dict[str, Loss] = {
    l.name: l
    for l in (
        Loss("mse", mse_value_and_grad, mse_value, "J = mean (ŷ - y)²", "regression", mse_output_hvp),
        Loss(
            "half_mse",
            half_mse_value_and_grad,
            half_mse_value,
            "J = ½ mean (ŷ - y)²",
            "regression",
            half_mse_output_hvp,
        ),
        Loss(
            "bce_logits",
            bce_value_and_grad,
            bce_value,
            "J = mean [log(1 + e^z) - y z]  (binary cross-entropy on logits)",
            "classification",
            bce_output_hvp,
        ),
        Loss(
            "softmax_ce",
            softmax_ce_value_and_grad,
            softmax_ce_value,
            "J = -mean Σ_c y_c log softmax(z)_c",
            "classification",
            softmax_ce_output_hvp,
        ),
    )
}


def accuracy(loss_name: str, output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Fraction of correctly classified samples per run, ``(R,)``, for the classification losses."""
    if loss_name == "bce_logits":
        return ((output > 0) == (target > 0.5)).mean(axis=(1, 2))
    if loss_name == "softmax_ce":
        return (output.argmax(axis=2) == target.argmax(axis=-1)).mean(axis=1)
    raise ValueError(f"accuracy is defined for classification losses, not {loss_name!r}")
