"""Built-in gradient transforms and wrappers (clipping, weight decay, noise, centralisation, Lookahead).

Each is a :class:`~descentlab.Transform`: pure numpy over the run axis, like the rules in
``rules.py``. Arrays are ``(R, P)``; every hyperparameter is an ``(R, 1)`` array, and
``hyper["seed"]`` holds the runs' seeds. Every quantity is per run: a global norm is over one run's
parameters, never over the batch, so R runs stacked give what each gives alone. ``update`` runs
before the rule on the gradient; ``after`` is a wrapper that rewrites the rule's updates (the
runner then applies θ ← θ + updates). No function writes into ``grad``, ``params`` or ``updates``.
An experiment entry lists them in order: ``transforms = [{name = "clip_global_norm", max_norm = 1.0}]``.
"""

from __future__ import annotations

import numpy as np

from descentlab import HyperParam, Transform, hookimpl

# PyTorch's clip_grad_norm_ adds this to the norm before dividing (torch.nn.utils.clip_grad_norm_).
CLIP_NORM_EPS = 1e-6
# Mixed into each run's seed for the noise stream (ASCII "nois"), so it is not the stream that
# draws the run's initial weights or mini-batches from the same seed.
NOISE_STREAM = 0x6E6F6973


# --- clipping ------------------------------------------------------------------------------------


def clip_global_norm_update(grad, state, params, hyper, step):
    """Clip each run's gradient to a global norm (PyTorch ``clip_grad_norm_`` convention).

    n ← ‖g‖₂ over all of the run's parameters
    g ← g · min(1, c / (n + 10⁻⁶))          (max_norm c)
    """
    norm = np.sqrt(np.einsum("rp,rp->r", grad, grad))[:, None]
    coefficient = np.minimum(hyper["max_norm"] / (norm + CLIP_NORM_EPS), 1.0)
    return grad * coefficient.astype(grad.dtype, copy=False), state


def clip_by_value_update(grad, state, params, hyper, step):
    """Clip every component of the gradient to [−c, c] (PyTorch ``clip_grad_value_``).

    g ← min(max(g, −c), c)                  (clip_value c)
    """
    c = hyper["clip_value"]
    return np.clip(grad, -c, c), state


# --- weight decay --------------------------------------------------------------------------------


def weight_decay_l2_update(grad, state, params, hyper, step):
    """L2 weight decay on the gradient (PyTorch's ``weight_decay`` of SGD, Adam, ...).

        g ← g + λθ                              (decay λ)

    Before gd, the same numbers as gd's own ``weight_decay`` (bit for bit).
    """
    out = np.multiply(params, hyper["decay"])
    out += grad
    return out, state


def weight_decay_decoupled_after(updates, state, params, learning_rate, hyper, step):
    """Decoupled weight decay (Loshchilov & Hutter 2019), a wrapper: the rule's step, then shrink θ.

        Δθ ← Δθ − α_t λ θ                       (decay λ; α_t the run's learning rate)

    so θ ← θ − α_t λ θ + Δθ_rule: PyTorch's AdamW when the rule is adam (bit for bit).
    """
    return updates - (learning_rate * hyper["decay"]) * params, state


# --- gradient noise ------------------------------------------------------------------------------


def gradient_noise_init(params, hyper):
    """One random generator per run, seeded by that run's seed alone."""
    seeds = np.asarray(hyper["seed"]).reshape(-1)
    generators = np.empty(len(seeds), dtype=object)
    for i, seed in enumerate(seeds.tolist()):
        generators[i] = np.random.default_rng([int(seed), NOISE_STREAM])
    return generators


def gradient_noise_update(grad, state, params, hyper, step):
    """Annealed Gaussian gradient noise (Neelakantan et al. 2015).

        g ← g + σ_t ε,   ε ~ N(0, I),   σ_t² = η / (1 + t)^γ        (eta η, gamma γ; t = step)

    Each run draws ε from its own generator, seeded by the run's seed: a run's noise depends only
    on its seed and step, never on the other runs of its batch (same seed, same noise, whatever the
    rule; two gradient_noise transforms in one entry would draw the same ε).
    """
    noise = np.empty(grad.shape, dtype=np.float64)
    for i, generator in enumerate(state):
        generator.standard_normal(out=noise[i])
    sigma = np.sqrt(hyper["eta"] / (1.0 + step) ** hyper["gamma"])
    out = noise.astype(grad.dtype, copy=False)
    out *= sigma.astype(grad.dtype, copy=False)
    out += grad
    return out, state


# --- gradient centralisation ---------------------------------------------------------------------


def gradient_centralization_init(params, hyper, layout=None):
    """The weight matrices to centralise: ``(offset, size, shape)`` of every tensor with 2+ axes."""
    if layout is None:
        return ()
    return tuple((e.offset, e.size, e.shape) for e in layout.entries if len(e.shape) >= 2)


def gradient_centralization_update(grad, state, params, hyper, step):
    """Gradient centralisation (Yong et al. 2020) on every weight matrix.

        ∂J/∂W[:, j] ← ∂J/∂W[:, j] − mean_i ∂J/∂W[i, j]      (W of shape (n_in, n_out))

    Each output unit's column of a weight gradient loses its mean (over every axis but the last);
    biases and other 1-D tensors, and problems without weight matrices, are left unchanged.
    """
    if not state:
        return grad, state
    out = grad.copy()
    runs = grad.shape[0]
    for offset, size, shape in state:
        block = grad[:, offset : offset + size].reshape(runs, *shape)
        axes = tuple(range(1, len(shape)))
        out[:, offset : offset + size] = (block - block.mean(axis=axes, keepdims=True)).reshape(runs, size)
    return out, state


# --- Lookahead -----------------------------------------------------------------------------------


def lookahead_init(params, hyper):
    """The slow weights φ start at θ₀."""
    return params.copy()


def lookahead_after(updates, state, params, learning_rate, hyper, step):
    """Lookahead (Zhang et al. 2019), a wrapper: the rule takes the fast steps; every k steps

        θ' ← θ + Δθ_rule                        (the fast weights after this step)
        φ ← φ + α (θ' − φ),   θ ← φ             (sync_every k, alpha α; at steps t with (t + 1) mod k = 0)

    written as the update Δθ = φ − θ, so the runner's θ + Δθ lands on φ (to one rounding of the
    subtraction) and the recorded step size is the step actually taken. The rule's own state
    (e.g. Adam's moments) is kept across syncs, as in the paper.
    """
    sync = np.remainder(step + 1, hyper["sync_every"]) == 0
    if not sync.any():
        return updates, state
    slow = state
    fast = params + updates
    pulled = slow + hyper["alpha"] * (fast - slow)
    return np.where(sync, pulled - params, updates), np.where(sync, pulled, slow)


TRANSFORMS = (
    Transform(
        "clip_global_norm",
        update=clip_global_norm_update,
        hyperparams=(
            HyperParam(
                "max_norm", 1.0, 0.0, None, low_open=True, log=True, help="largest ‖g‖₂ of a run's whole gradient c"
            ),
        ),
        summary="Clip each run's gradient to a global ℓ₂ norm (PyTorch clip_grad_norm_).",
        formula="g ← g · min(1, c / (‖g‖₂ + 10⁻⁶))",
    ),
    Transform(
        "clip_by_value",
        update=clip_by_value_update,
        hyperparams=(
            HyperParam(
                "clip_value", 1.0, 0.0, None, low_open=True, log=True, help="largest |g_i| of one gradient component c"
            ),
        ),
        summary="Clip every gradient component to [−c, c] (PyTorch clip_grad_value_).",
        formula="g ← clip(g, −c, c)",
    ),
    Transform(
        "weight_decay_l2",
        update=weight_decay_l2_update,
        hyperparams=(HyperParam("decay", 0.01, 0.0, None, help="L2 penalty λ: the gradient becomes g + λθ"),),
        summary="L2 weight decay on the gradient, before the rule (PyTorch weight_decay).",
        formula="g ← g + λθ",
    ),
    Transform(
        "weight_decay_decoupled",
        after=weight_decay_decoupled_after,
        hyperparams=(HyperParam("decay", 0.01, 0.0, None, help="decoupled decay λ: θ ← θ − α_t λ θ"),),
        summary="Decoupled weight decay, a wrapper after the rule (AdamW's, for any rule).",
        formula="Δθ ← Δθ − α_t λ θ",
    ),
    Transform(
        "gradient_noise",
        init=gradient_noise_init,
        update=gradient_noise_update,
        hyperparams=(
            HyperParam("eta", 0.01, 0.0, None, help="noise variance scale η"),
            HyperParam("gamma", 0.55, 0.0, None, help="annealing exponent γ of the variance"),
        ),
        summary="Annealed Gaussian gradient noise, each run's own stream from its seed (Neelakantan et al. 2015).",
        formula="g ← g + σ_t ε,  ε ~ N(0, I),  σ_t² = η / (1 + t)^γ",
    ),
    Transform(
        "gradient_centralization",
        init=gradient_centralization_init,
        update=gradient_centralization_update,
        uses_layout=True,
        summary="Remove the mean of each output unit's weight-gradient column (Yong et al. 2020); biases unchanged.",
        formula="∂J/∂W[:, j] ← ∂J/∂W[:, j] − mean_i ∂J/∂W[i, j]",
    ),
    Transform(
        "lookahead",
        init=lookahead_init,
        after=lookahead_after,
        hyperparams=(
            HyperParam("sync_every", 5, 1, None, kind="int", help="fast steps k between syncs"),
            HyperParam("alpha", 0.5, 0.0, 1.0, low_open=True, help="slow-weights step α"),
        ),
        summary=(
            "Lookahead wrapper: the rule's fast weights, pulled back to slow weights every k steps (Zhang et al. 2019)."
        ),
        formula="every k steps: φ ← φ + α(θ − φ), θ ← φ",
    ),
)


@hookimpl
def register_transforms(register):
    """Register the built-in gradient transforms and wrappers."""
    for transform in TRANSFORMS:
        register(transform)
