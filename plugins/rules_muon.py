"""Muon (Jordan et al. 2024), the convention of torch.optim.Muon: momentum, then each weight matrix's step
orthogonalised by a Newton–Schulz iteration.

The contract is the one of descentlab.plugins.rules (see its module docstring): arrays (R, P),
hyperparameters and the learning rate (R, 1), every array of a state with the run axis first, ``step``
the number of updates already taken, ``grad`` and ``params`` never written. The matrices come from the
problem's layout (``uses_layout``), as for Adafactor.

Two differences from torch, both deliberate: torch runs the Newton–Schulz iteration in bfloat16 (about
three significant digits), descentlab in the runs' dtype, so the two agree to bfloat16's precision and
descentlab's runs are reproducible to the bit; and torch refuses any parameter that is not a matrix,
while a descentlab problem has biases (and a landscape's point is one vector), so every tensor that is
not two-dimensional takes the momentum step itself, not orthogonalised (Jordan's reference hands those
tensors to AdamW instead; use that by giving them no bias, or another rule).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from descentlab import DescentRule, HyperParam, hookimpl

from .rules_new import _lerp


class MuonState(NamedTuple):
    momentum_buffer: np.ndarray  # (R, P) B, the exponential average of the gradients (starts at 0)
    plan: tuple  # per tensor (start, stop, (n_in, n_out) or None): the same for every run, not an array


def _muon_plan(layout, size: int) -> tuple:
    """Per tensor of the layout: its columns and, for a 2-D tensor, its shape; without a layout one vector."""
    if layout is None:
        return ((0, size, None),)
    if layout.size != size:
        raise ValueError(f"muon: the layout holds {layout.size} parameters, the rows {size}")
    return tuple(
        (e.offset, e.offset + e.size, tuple(e.shape) if len(e.shape) == 2 else None) for e in layout.entries if e.size
    )


def muon_init(params, hyper, layout=None):
    return MuonState(np.zeros_like(params), _muon_plan(layout, params.shape[1]))


def newton_schulz(update, a, b, c, steps, eps):
    """torch.optim.Muon's orthogonalisation of a stack of matrices ``update`` (R, m, n), per run r:

        X ← Gᵀ if m > n (so X is wide),   X ← X / max(‖X‖_F, ε)
        repeat k times:   A = X Xᵀ,   X ← a X + (b A + c A A) X
        back to m × n

    ``a``, ``b``, ``c``, ``eps`` are (R, 1, 1) and ``steps`` (R,) integers: each run stops after its own k."""
    tall = update.shape[1] > update.shape[2]
    x = np.swapaxes(update, 1, 2) if tall else update
    norm = np.sqrt(np.einsum("rij,rij->r", x, x))[:, None, None]
    x = x / np.maximum(norm, eps)
    for k in range(int(np.max(steps, initial=0))):
        gram = x @ np.swapaxes(x, 1, 2)
        polynomial = b * gram + c * (gram @ gram)
        stepped = a * x + polynomial @ x
        x = np.where((k < steps)[:, None, None], stepped, x)
    return np.swapaxes(x, 1, 2) if tall else x


def muon_update(grad, state, params, learning_rate, hyper, step):
    """Muon, torch.optim.Muon's convention (momentum μ, nesterov, weight_decay λ decoupled, ns_a/ns_b/ns_c the
    Newton–Schulz coefficients (a, b, c), ns_steps k, eps ε, adjust_lr_fn):

        B ← B + (1 − μ)(g − B)                        (torch's lerp; B starts at 0)
        U = g + μ(B − g)  with nesterov,  else  U = B
        O = NS_k(U) for a matrix (each run's n_in × n_out tensor), O = U for any other tensor
        θ ← θ(1 − αλ) − α' O,   α' = α·√max(1, n_out/n_in)   ('original', torch's default), or
                                α' = 0.2·α·√max(n_in, n_out)   ('match_rms_adamw'); α' = α for a non-matrix

    torch's (A, B) = (out, in) of nn.Linear's weight is (n_out, n_in) here: descentlab's W is its transpose.
    """
    mu = hyper["momentum"]
    buffer = state.momentum_buffer
    buffer[...] = _lerp(buffer, grad, 1.0 - mu)
    nesterov = np.asarray(hyper["nesterov"]) != 0
    update = np.where(nesterov, _lerp(grad, buffer, mu), buffer) if np.any(nesterov) else buffer.copy()
    runs = params.shape[0]
    a, b, c = (np.asarray(hyper[k], dtype=params.dtype).reshape(runs, 1, 1) for k in ("ns_a", "ns_b", "ns_c"))
    eps = np.asarray(hyper["eps"], dtype=params.dtype).reshape(runs, 1, 1)
    ns_steps = np.rint(np.asarray(hyper["ns_steps"], dtype=float)).astype(int).reshape(runs)
    match_adamw = np.asarray(hyper["adjust_lr_fn"]).reshape(runs, 1) == "match_rms_adamw"
    out = np.empty_like(params)
    for start, stop, shape in state.plan:
        block = update[:, start:stop]
        rate = learning_rate
        if shape is not None:
            n_in, n_out = shape
            block = newton_schulz(block.reshape(runs, n_in, n_out), a, b, c, ns_steps, eps).reshape(runs, -1)
            original = math.sqrt(max(1.0, n_out / n_in))
            rate = learning_rate * np.where(match_adamw, 0.2 * math.sqrt(max(n_in, n_out)), original)
        out[:, start:stop] = -rate * block
    decay = hyper["weight_decay"]
    if np.any(decay):
        out -= (learning_rate * decay) * params
    return out.astype(params.dtype, copy=False), state


_ORTHOGONAL_NOTE = (
    "orthogonalised: every weight matrix moves by α'·O with O's singular values near 1 whatever the "
    "gradient's size and the curvature, so no α·λ threshold exists (non-matrix tensors take a momentum "
    "step whose edge depends on μ and the curvature of those tensors alone)"
)

RULES = (
    DescentRule(
        "muon",
        muon_init,
        muon_update,
        hyperparams=(
            HyperParam("momentum", 0.95, low=0.0, high=1.0, high_open=True, help="momentum μ of the average B of g"),
            HyperParam("nesterov", True, kind="bool", help="orthogonalise g + μ(B − g) instead of B"),
            HyperParam("weight_decay", 0.1, low=0.0, help="decoupled weight decay λ: θ ← θ(1 − αλ) before the step"),
            HyperParam("ns_a", 3.4445, help="Newton–Schulz coefficient a (torch ns_coefficients[0])"),
            HyperParam("ns_b", -4.775, help="Newton–Schulz coefficient b (torch ns_coefficients[1])"),
            HyperParam("ns_c", 2.0315, help="Newton–Schulz coefficient c (torch ns_coefficients[2])"),
            HyperParam("ns_steps", 5, low=1, high=99, kind="int", help="Newton–Schulz iterations k"),
            HyperParam(
                "eps", 1e-7, low=0.0, low_open=True, log=True, help="ε: the smallest norm the iteration divides by"
            ),
            HyperParam(
                "adjust_lr_fn",
                "original",
                kind="choice",
                choices=("original", "match_rms_adamw"),
                help="step size per matrix: α√max(1, n_out/n_in) ('original', torch's default None) or "
                "0.2α√max(n_in, n_out) ('match_rms_adamw')",
            ),
        ),
        summary="Muon: momentum, then each weight matrix's step orthogonalised by a Newton–Schulz iteration "
        "(torch.optim.Muon's convention; non-matrix tensors take the momentum step itself).",
        formula="B ← B + (1 − μ)(g − B);  U = g + μ(B − g);  θ ← θ(1 − αλ) − α' NS_k(U)",
        default_learning_rate=0.001,
        threshold_note=_ORTHOGONAL_NOTE,
        title="Muon",
        uses_layout=True,
        moves_without_gradient=True,
        torch_optimizer="Muon",
        torch_defaults={
            "learning_rate": 0.001,
            "momentum": 0.95,
            "nesterov": True,
            "weight_decay": 0.1,
            "ns_a": 3.4445,
            "ns_b": -4.775,
            "ns_c": 2.0315,
            "ns_steps": 5,
            "eps": 1e-7,
            "adjust_lr_fn": "original",
        },
    ),
)


@hookimpl
def register_optimizers(register):
    """Register Muon."""
    for rule in RULES:
        register(rule)
