"""Cost of sharpness tracking: one λ_max measurement against one training step, and end to end.

Run: python benchmarks/sharpness.py [--problem spirals] [--runs 8] [--steps 200]

Prints (1) the time of one gradient evaluation + GD update of R stacked runs, (2) the time of one
Hessian-vector product, exact (R-operator) and by a central difference of gradients, (3) the time
of one cold λ_max measurement each way (Lanczos to tol 1e-10), and (4) the runner's wall time for the
same experiment with sharpness_every = 0, 50, 10 and 1, with the warm-started tracker's products
per measurement.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from descentlab.experiment import Experiment
from descentlab.registry import get_registry
from descentlab.runner import run_experiment
from descentlab import sharpness
from descentlab.allocator import keep_freed_memory
from descentlab.sharpness import top_hessian_eigenvalue


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="spirals")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    registry = get_registry()
    problem = registry.problem(args.problem)
    settings = {h.name: h.default for h in problem.settings}
    instance = problem.build(settings)
    rule = registry.rule("gd")
    params = instance.init_params(list(range(args.runs)))
    lr = np.full((args.runs, 1), 0.1)
    state = rule.init(params, {})

    def train_step():
        _, grad = instance.loss_and_grad(params)
        rule.update(grad, state, params, lr, {"weight_decay": np.zeros((args.runs, 1))}, 0)

    keep_freed_memory()  # as the runner's processes do: fresh pages per temporary would dominate
    vectors = np.random.default_rng(0).standard_normal(params.shape)
    eps = float(sharpness._steps(params, None).mean())
    step_time = best_of(lambda: [train_step() for _ in range(20)], args.repeats) / 20
    exact_hvp = best_of(lambda: [sharpness.hessian_vector_product(instance, params, vectors) for _ in range(20)],
                        args.repeats) / 20
    fd_hvp = best_of(lambda: [sharpness.hessian_vector_product(instance, params, vectors, eps=eps)
                              for _ in range(20)], args.repeats) / 20
    exact_lambda = best_of(lambda: top_hessian_eigenvalue(instance, params, iters=args.iters), args.repeats)
    fd_lambda = best_of(lambda: top_hessian_eigenvalue(instance, params, iters=args.iters, eps=eps), args.repeats)
    print(f"problem {args.problem} ({getattr(instance, 'model', '')}, {instance.n_train} samples, "
          f"P = {instance.layout.size}), R = {args.runs} runs stacked")
    print(f"one training step (gradient + GD update):   {1e3 * step_time:8.3f} ms  "
          f"({1e6 * step_time / args.runs:.0f} µs per run-step)")
    print(f"one Hessian-vector product: exact {1e3 * exact_hvp:.3f} ms = {exact_hvp / step_time:.2f} steps, "
          f"central difference {1e3 * fd_hvp:.3f} ms = {fd_hvp / step_time:.2f} steps")
    print(f"one cold λ_max (Lanczos, at most {args.iters} products): exact {1e3 * exact_lambda:.2f} ms = "
          f"{exact_lambda / step_time:.1f} steps, central differences {1e3 * fd_lambda:.2f} ms = "
          f"{fd_lambda / step_time:.1f} steps")

    counts = []
    measure = sharpness.SharpnessTracker.measure

    def counting(self, *a, **k):
        before = self.products
        out = measure(self, *a, **k)
        counts.append(self.products - before)
        return out

    sharpness.SharpnessTracker.measure = counting
    spec = {"steps": args.steps, "seeds": list(range(args.runs)), "eval_every": args.steps,
            "problem": {"name": args.problem}, "rules": [{"rule": "gd", "learning_rate": 0.1}]}
    base = None
    for every in (0, 50, 10, 1):
        experiment = Experiment.from_dict({**spec, "sharpness_every": every})
        wall = best_of(lambda: run_experiment(experiment, workers=1), max(1, args.repeats // 2))
        base = wall if base is None else base
        per = f", {np.mean(counts):.1f} products per measurement (warm start)" if counts else ""
        counts.clear()
        print(f"runner, {args.steps} steps, sharpness_every = {every:3d}: {wall:7.3f} s  ({wall / base:.2f}x){per}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
