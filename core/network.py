"""The multilayer perceptron and its backpropagation, over a stack of R runs at once."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .activations import ACTIVATIONS
from .errors import SpecError
from .layout import ParamLayout
from .losses import LOSSES

__all__ = ["INIT_SCHEMES", "init_scale", "MLP", "HessianOperator"]

INIT_SCHEMES = ("auto", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal")


def init_scale(scheme: str, fan_in: int, fan_out: int) -> tuple[str, float]:
    """``(distribution, parameter)``: the uniform bound or the normal standard deviation.

    Glorot (Xavier): Var = 2/(fan_in + fan_out); He (Kaiming): Var = 2/fan_in.
    Uniform on [-b, b] has Var = b²/3, hence b = sqrt(3 Var).
    """
    variance = 2.0 / (fan_in + fan_out) if scheme.startswith("glorot") else 2.0 / fan_in
    if scheme.endswith("uniform"):
        return "uniform", float(np.sqrt(3.0 * variance))
    return "normal", float(np.sqrt(variance))


class MLP:
    """Dense layers ``a_i = f(a_{i-1} W_i + b_i)``; the last layer's activation is the identity.

    Parameters of layer i are ``W{i}`` of shape ``(n_in, n_out)`` and ``b{i}`` of shape
    ``(n_out,)``, stored in that order in the flat ``(R, P)`` row (see :class:`ParamLayout`).
    Inputs are ``(N, d)`` shared by all runs or ``(R, N, d)`` per run (mini-batches).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", init: str = "auto"):
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise SpecError("model.sizes", list(sizes), "at least an input and an output size, all >= 1")
        if activation not in ACTIVATIONS:
            raise SpecError("model.activation", activation, "one of " + ", ".join(ACTIVATIONS))
        if loss not in LOSSES:
            raise SpecError("model.loss", loss, "one of " + ", ".join(LOSSES))
        if init not in INIT_SCHEMES:
            raise SpecError("model.init", init, "one of " + ", ".join(INIT_SCHEMES))
        self.sizes = [int(s) for s in sizes]
        self.activation = ACTIVATIONS[activation]
        self.loss = LOSSES[loss]
        if init == "auto":
            init = "he_uniform" if activation in ("relu", "leaky_relu") else "glorot_uniform"
        self.init = init
        entries = []
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1):
            entries += [(f"W{i}", (n_in, n_out), f"layer{i}"), (f"b{i}", (n_out,), f"layer{i}")]
        self.layout = ParamLayout(entries)
        self.n_layers = len(self.sizes) - 1

    def __repr__(self) -> str:
        return f"MLP({'-'.join(map(str, self.sizes))}, {self.activation.name}, {self.loss.name}, {self.init})"

    def init_params(self, seeds: Sequence[int], dtype=np.float64) -> np.ndarray:
        """``(R, P)`` initial parameters, row r drawn from ``seeds[r]`` alone; biases start at 0.

        Drawn in float64 and then cast, so a seed gives the same bits on every rerun, whatever
        else is in the batch and whatever descent rule trains it.
        """
        params = np.zeros((len(seeds), self.layout.size), dtype=np.float64)
        for r, seed in enumerate(seeds):
            rng = np.random.default_rng(int(seed))
            for i in range(1, self.n_layers + 1):
                entry = self.layout.entry(f"W{i}")
                distribution, scale = init_scale(self.init, *entry.shape)
                draw = (
                    rng.uniform(-scale, scale, entry.size)
                    if distribution == "uniform"
                    else rng.normal(0.0, scale, entry.size)
                )
                params[r, entry.offset : entry.offset + entry.size] = draw
        return params.astype(dtype, copy=False)

    def _weights(self, params):
        views = self.layout.unflatten(params)
        return [(views[f"W{i}"], views[f"b{i}"]) for i in range(1, self.n_layers + 1)]

    def forward(self, params: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Outputs ``(R, N, n_out)`` of the network (logits for the classification losses)."""
        a = inputs
        layers = self._weights(params)
        for i, (w, b) in enumerate(layers):
            z = np.matmul(a, w)
            z += b[:, None, :]
            a = z if i == len(layers) - 1 else self.activation.forward(z)
        return a

    def loss_value(self, params: np.ndarray, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Mean loss per run, ``(R,)``, without the backward pass."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return self.loss.value(self.forward(params, inputs), targets)

    def loss_and_grad(
        self,
        params: np.ndarray,
        inputs: np.ndarray,
        targets: np.ndarray,
        out: np.ndarray | None = None,
        trace: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss ``(R,)`` and its gradient ``(R, P)`` by backpropagation.

        Forward keeps each layer's input and pre-activation; backward carries
        δ = ∂J/∂z from the output layer down: ∂J/∂W = aᵀδ, ∂J/∂b = Σ_n δ,
        δ_prev = f'(z_prev) ⊙ (δ Wᵀ). A ``trace`` dict receives that forward and backward pass
        (for :meth:`hessian_operator` at the same point; the gradient is the same either way).
        """
        grad = np.empty_like(params) if out is None else out
        layers = self._weights(params)
        grads = self._weights(grad)
        last = len(layers) - 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            cache = []
            a = inputs
            for i, (w, b) in enumerate(layers):
                z = np.matmul(a, w)
                z += b[:, None, :]
                cache.append((a, z))
                a = z if i == last else self.activation.forward(z)
            loss, delta = self.loss.value_and_grad(a, targets)
            if trace is not None:
                trace.update(cache=cache, output=a, deltas=[None] * (last + 1), grad_as=[None] * last)
            # Summing over samples as a product with a row of ones runs through BLAS, about 3x
            # faster than delta.sum(axis=1) at these sizes.
            ones = np.ones(delta.shape[1], dtype=delta.dtype)
            for i in range(last, -1, -1):
                a_in, z = cache[i]
                gw, gb = grads[i]
                if trace is not None:
                    trace["deltas"][i] = delta
                if a_in.ndim == 2:  # inputs shared by all runs
                    np.matmul(a_in.T, delta, out=gw)
                else:
                    np.matmul(a_in.transpose(0, 2, 1), delta, out=gw)
                np.matmul(ones, delta, out=gb)
                if i > 0:
                    w = layers[i][0]
                    if w.shape[2] == 1:  # one output unit: an outer product, cheaper by broadcasting
                        grad_a = delta * w.transpose(0, 2, 1)
                    else:
                        grad_a = np.matmul(delta, w.transpose(0, 2, 1))
                    if trace is not None:
                        trace["grad_as"][i - 1] = grad_a.copy()  # backward overwrites it
                    delta = self.activation.backward(cache[i - 1][1], a_in, grad_a)
        return loss, grad

    def hessian_vector_product(
        self, params: np.ndarray, vectors: np.ndarray, inputs: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        """Exact ``H v`` ``(R, P)`` for every run: Pearlmutter's R-operator over backprop (float64).

        R{·} is the directional derivative along v (V_i, c_i the parts of v for W_i, b_i). Forward,
        R{z_i} = R{a_{i−1}} W_i + a_{i−1} V_i + c_i and R{a_i} = f'(z_i) ⊙ R{z_i}, with R{a_0} = 0.
        Backward, R{δ_L} = ∇²_ŷJ R{ŷ}, then per layer R{∂J/∂W_i} = R{a_{i−1}}ᵀ δ_i + a_{i−1}ᵀ R{δ_i},
        R{∂J/∂b_i} = Σ_n R{δ_i}, and R{δ_{i−1}} = f''(z_{i−1}) ⊙ R{z_{i−1}} ⊙ (δ_i W_iᵀ)
        + f'(z_{i−1}) ⊙ (R{δ_i} W_iᵀ + δ_i V_iᵀ). One product costs about two gradient evaluations,
        like a central difference of gradients, but has no truncation or cancellation error.
        """
        params = np.asarray(params, dtype=np.float64)
        vectors = np.asarray(vectors, dtype=np.float64)
        inputs = np.asarray(inputs, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        layers, directions = self._weights(params), self._weights(vectors)
        out = np.empty_like(params)
        results = self._weights(out)
        last = len(layers) - 1
        second, output_hvp = self.activation.second, self.loss.output_hvp
        if second is None or output_hvp is None:
            raise NotImplementedError(f"{self.activation.name} or {self.loss.name} declares no second derivative")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            cache: list[tuple] = []
            a, r_a = inputs, None
            for i, ((w, b), (vw, vb)) in enumerate(zip(layers, directions)):
                z = np.matmul(a, w)
                z += b[:, None, :]
                r_z = np.matmul(a, vw)
                r_z += vb[:, None, :]
                if r_a is not None:
                    r_z += np.matmul(r_a, w)
                if i < last:
                    a_out = self.activation.forward(z)
                    cache.append((a, r_a, z, r_z, a_out))
                    a, r_a = a_out, self.activation.backward(z, a_out, r_z.copy())
                else:
                    cache.append((a, r_a, z, r_z, z))
            _, delta = self.loss.value_and_grad(z, targets)
            r_delta = output_hvp(z, targets, r_z)
            ones = np.ones(delta.shape[1])
            for i in range(last, -1, -1):
                a_in, r_a_in = cache[i][:2]
                hw, hb = results[i]
                np.matmul(a_in.T if a_in.ndim == 2 else a_in.transpose(0, 2, 1), r_delta, out=hw)
                if r_a_in is not None:
                    hw += np.matmul(r_a_in.transpose(0, 2, 1), delta)
                np.matmul(ones, r_delta, out=hb)
                if i > 0:
                    w_t, vw_t = layers[i][0].transpose(0, 2, 1), directions[i][0].transpose(0, 2, 1)
                    grad_a = np.matmul(delta, w_t)
                    r_grad_a = np.matmul(r_delta, w_t)
                    r_grad_a += np.matmul(delta, vw_t)
                    _, _, z_prev, r_z_prev, a_prev = cache[i - 1]
                    curvature = second(z_prev, a_prev)
                    curvature *= r_z_prev
                    curvature *= grad_a
                    r_delta = self.activation.backward(z_prev, a_prev, r_grad_a)
                    r_delta += curvature
                    delta = self.activation.backward(z_prev, a_prev, grad_a)
        return out

    def hessian_operator(
        self, params: np.ndarray, inputs: np.ndarray, targets: np.ndarray, trace: dict | None = None
    ) -> "HessianOperator":
        """``H v`` at fixed ``params`` for several v: the R-operator with its v-free half done once.

        Lanczos multiplies the same Hessian by several vectors. Everything in
        :meth:`hessian_vector_product` that does not depend on v (the forward pass z_i, a_i, the
        slopes f'(z_i), the backward deltas δ_i and f''(z_{i−1}) ⊙ (δ_i W_iᵀ)) is computed here once,
        so each product only pushes R{·} through: fewer matrix products and no activation function
        (docs/dev/speed.md, "Sharpness tracking"). Same formulas; the products agree to rounding.
        ``trace``: the dict that :meth:`loss_and_grad` filled at these same float64 params and
        inputs (the training step's own pass), so not even the forward pass is repeated.
        """
        params = np.asarray(params, dtype=np.float64)
        inputs = np.asarray(inputs, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        layers = self._weights(params)
        last = len(layers) - 1
        second, output_hvp = self.activation.second, self.loss.output_hvp
        if second is None or output_hvp is None:
            raise NotImplementedError(f"{self.activation.name} or {self.loss.name} declares no second derivative")
        if trace is not None:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                ins = [a_in for a_in, _ in trace["cache"]]
                zs = [(trace["cache"][i][1], ins[i + 1]) for i in range(last)]
                slopes = [self.activation.backward(z, a, np.ones_like(z)) for z, a in zs]
                curvatures: list = []
                for (z, a), grad_a in zip(zs, trace["grad_as"]):
                    curvature = second(z, a)
                    curvature *= grad_a
                    curvatures.append(curvature)
            return HessianOperator(
                self, params, ins, slopes, list(trace["deltas"]), curvatures, trace["output"], targets
            )
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            ins, slopes, zs = [], [], []  # a_{i−1} per layer; f'(z_i) and z_i, a_i per hidden layer
            a = inputs
            for i, (w, b) in enumerate(layers):
                ins.append(a)
                z = np.matmul(a, w)
                z += b[:, None, :]
                if i < last:
                    a = self.activation.forward(z)
                    zs.append((z, a))
                    slopes.append(self.activation.backward(z, a, np.ones_like(z)))
            output = z
            _, delta = self.loss.value_and_grad(output, targets)
            deltas: list = [None] * (last + 1)
            curvatures = [None] * last
            deltas[last] = delta
            for i in range(last, 0, -1):
                grad_a = np.matmul(delta, layers[i][0].transpose(0, 2, 1))
                curvature = second(*zs[i - 1])
                curvature *= grad_a
                curvatures[i - 1] = curvature
                delta = slopes[i - 1] * grad_a
                deltas[i - 1] = delta
        return HessianOperator(self, params, ins, slopes, deltas, curvatures, output, targets)


class HessianOperator:
    """``op(vectors) -> H v`` ``(R, P)`` of an MLP at fixed parameters (see ``MLP.hessian_operator``).

    ``op.rows(keep)`` is the same operator restricted to the runs ``keep`` (Lanczos drops the runs
    that have converged, so the products of the remaining ones cost less).
    """

    def __init__(self, model, params, ins, slopes, deltas, curvatures, output, targets):
        self.model, self.params = model, params
        self.ins, self.slopes, self.deltas, self.curvatures = ins, slopes, deltas, curvatures
        self.output, self.targets = output, targets
        self.layers = model._weights(params)
        # (W_i columns, W_i shape, b_i columns) of the flat row, looked up once: two splits per product
        entries = {e.name: e for e in model.layout.entries}
        self.splits = [
            (slice(w.offset, w.offset + w.size), w.shape, slice(b.offset, b.offset + b.size))
            for w, b in ((entries[f"W{i}"], entries[f"b{i}"]) for i in range(1, model.n_layers + 1))
        ]
        # W_iᵀ as contiguous arrays: numpy's batched matmul is about twice as slow on a transposed view
        self.transposed = [None] + [np.ascontiguousarray(w.transpose(0, 2, 1)) for w, _ in self.layers[1:]]

    def rows(self, keep: np.ndarray) -> "HessianOperator":
        def pick(a):
            return a if a is None or a.ndim == 2 else a[keep]  # 2-D: inputs shared by all runs

        return HessianOperator(
            self.model,
            self.params[keep],
            [pick(a) for a in self.ins],
            [pick(a) for a in self.slopes],
            [pick(a) for a in self.deltas],
            [pick(a) for a in self.curvatures],
            self.output[keep],
            pick(self.targets),
        )

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float64)
        model, layers, ins, slopes, deltas = self.model, self.layers, self.ins, self.slopes, self.deltas
        out = np.empty_like(self.params)
        runs = out.shape[0]
        directions = [(vectors[:, w].reshape(runs, *shape), vectors[:, b]) for w, shape, b in self.splits]
        results = [(out[:, w].reshape(runs, *shape), out[:, b]) for w, shape, b in self.splits]
        last = len(layers) - 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            r_ins: list[np.ndarray | None] = []
            r_zs: list[np.ndarray] = []
            r_a = None
            for i, ((w, _), (vw, vb)) in enumerate(zip(layers, directions)):
                r_ins.append(r_a)
                r_z = np.matmul(ins[i], vw)
                r_z += vb[:, None, :]
                if r_a is not None:
                    r_z += np.matmul(r_a, w)
                r_zs.append(r_z)
                if i < last:
                    r_a = slopes[i] * r_z
            r_delta = model.loss.output_hvp(self.output, self.targets, r_zs[last])
            ones = np.ones(r_delta.shape[1])
            for i in range(last, -1, -1):
                a_in, r_a_in = ins[i], r_ins[i]
                hw, hb = results[i]
                np.matmul(a_in.T if a_in.ndim == 2 else a_in.transpose(0, 2, 1), r_delta, out=hw)
                if r_a_in is not None:
                    hw += np.matmul(r_a_in.transpose(0, 2, 1), deltas[i])
                np.matmul(ones, r_delta, out=hb)
                if i > 0:
                    vw_t = directions[i][0].transpose(0, 2, 1)
                    if vw_t.shape[1] == 1:  # one output unit: both outer products as one matmul of depth 2
                        r_grad_a = np.matmul(
                            np.concatenate([r_delta, deltas[i]], axis=2),
                            np.concatenate([self.transposed[i], vw_t], axis=1),
                        )
                    else:
                        r_grad_a = np.matmul(r_delta, self.transposed[i])
                        r_grad_a += np.matmul(deltas[i], np.ascontiguousarray(vw_t))
                    r_grad_a *= slopes[i - 1]
                    r_grad_a += self.curvatures[i - 1] * r_zs[i - 1]
                    r_delta = r_grad_a
        return out
