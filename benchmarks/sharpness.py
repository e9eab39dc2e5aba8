"""Cost of sharpness tracking: one λ_max measurement against one training step, and end to end.

Run: python benchmarks/sharpness.py [--repeats 3] [--problem spirals] [--runs 96] [--steps 500]
[--every 0,10,50] [--stack 12]

The default is issue 17's typical job: spirals 2-32-32-1 tanh, 256 points, 96 runs of GD, 500
steps, float64, one process. Prints (1) the time of one gradient evaluation + GD update of
``--stack`` stacked runs (the runner's chunk), (2) the time of one Hessian-vector product, exact
(R-operator), by a central difference of gradients, and through the tracker's operator that
reuses the v-free half of the R-operator, (3) the time of one cold λ_max each way (the functions'
own Lanczos, tol 1e-10), and (4) the runner's wall time of the whole job for each sharpness_every,
with the tracker's batched products per measurement and the cost of one measurement in training
steps, (T_k − T_0) / measurements / (T_0 / steps). Every timing is the best of ``--repeats``; the
runner rows are timed in interleaved rounds (one run of each sharpness_every per round, after one
untimed warm-up round), so a burst of load from another process hits all of them alike.
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
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="spirals")
    parser.add_argument("--runs", type=int, default=96)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--every", default="0,10,50", help="comma-separated sharpness_every values; 0 first")
    parser.add_argument("--stack", type=int, default=12, help="stacked runs of the micro-benchmarks")
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also time the SharpnessTracker of git revision REV "
        "(its core/sharpness.py, without the forward-pass reuse) in the same rounds",
    )
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    registry = get_registry()
    problem = registry.problem(args.problem)
    settings = {h.name: h.default for h in problem.settings}
    instance = problem.build(settings)
    rule = registry.rule("gd")
    params = instance.init_params(list(range(args.stack)))
    lr = np.full((args.stack, 1), 0.1)
    state = rule.init(params, {})

    def train_step():
        _, grad = instance.loss_and_grad(params)
        rule.update(grad, state, params, lr, {"weight_decay": np.zeros((args.stack, 1))}, 0)

    keep_freed_memory()  # as the runner's processes do: fresh pages per temporary would dominate
    vectors = np.random.default_rng(0).standard_normal(params.shape)
    eps = float(sharpness._steps(params, None).mean())
    step_time = best_of(lambda: [train_step() for _ in range(20)], args.repeats) / 20
    exact_hvp = (
        best_of(lambda: [sharpness.hessian_vector_product(instance, params, vectors) for _ in range(20)], args.repeats)
        / 20
    )
    fd_hvp = (
        best_of(
            lambda: [sharpness.hessian_vector_product(instance, params, vectors, eps=eps) for _ in range(20)],
            args.repeats,
        )
        / 20
    )
    exact_lambda = best_of(lambda: top_hessian_eigenvalue(instance, params, iters=args.iters), args.repeats)
    operator = sharpness._hessian_operator(instance, params, None)
    op_hvp = best_of(lambda: [operator(vectors) for _ in range(20)], args.repeats) / 20
    op_setup = best_of(lambda: sharpness._hessian_operator(instance, params, None), args.repeats)
    fd_lambda = best_of(lambda: top_hessian_eigenvalue(instance, params, iters=args.iters, eps=eps), args.repeats)
    print(
        f"problem {args.problem} ({getattr(instance, 'model', '')}, {instance.n_train} samples, "
        f"P = {instance.layout.size}), R = {args.stack} runs stacked, best of {args.repeats}"
    )
    print(
        f"one training step (gradient + GD update):   {1e3 * step_time:8.3f} ms  "
        f"({1e6 * step_time / args.stack:.0f} µs per run-step)"
    )
    print(
        f"one Hessian-vector product: exact {1e3 * exact_hvp:.3f} ms = {exact_hvp / step_time:.2f} steps, "
        f"central difference {1e3 * fd_hvp:.3f} ms = {fd_hvp / step_time:.2f} steps, "
        f"tracker's operator {1e3 * op_hvp:.3f} ms = {op_hvp / step_time:.2f} steps "
        f"(+ {op_setup / step_time:.2f} steps once per measurement)"
    )
    print(
        f"one cold λ_max (Lanczos, at most {args.iters} products): exact {1e3 * exact_lambda:.2f} ms = "
        f"{exact_lambda / step_time:.1f} steps, central differences {1e3 * fd_lambda:.2f} ms = "
        f"{fd_lambda / step_time:.1f} steps"
    )

    counts = []
    measure = sharpness.SharpnessTracker.measure

    def counting(self, *a, **k):
        before = self.products
        out = measure(self, *a, **k)
        counts.append(self.products - before)
        return out

    sharpness.SharpnessTracker.measure = counting
    trackers = {"": (sharpness.SharpnessTracker, sharpness.forward_trace)}
    if args.compare:
        trackers[args.compare] = (_tracker_of(args.compare, counts), lambda instance, params: None)
    spec = {
        "steps": args.steps,
        "seeds": list(range(args.runs)),
        "eval_every": args.steps,
        "problem": {"name": args.problem},
        "rules": [{"rule": "gd", "learning_rate": 0.1}],
    }
    everies = [int(e) for e in args.every.split(",")]
    rows = [(e, "") for e in everies] + [(e, args.compare) for e in everies if e and args.compare]
    experiments = {e: Experiment.from_dict({**spec, "sharpness_every": e}) for e in everies}
    walls = {row: [] for row in rows}
    per_measurement = {}
    for round_ in range(args.repeats + 1):
        for every, rev in rows:
            sharpness.SharpnessTracker, sharpness.forward_trace = trackers[rev]
            counts.clear()
            start = time.process_time()
            run_experiment(experiments[every], workers=1)
            if round_:  # round 0 warms up (imports, caches)
                walls[every, rev].append(time.process_time() - start)
            per_measurement[every, rev] = (np.mean(counts), len(counts)) if counts else None
    sharpness.SharpnessTracker, sharpness.forward_trace = trackers[""]
    base = min(walls[everies[0], ""])
    print(
        f"runner, {args.runs} runs x {args.steps} steps, one process, CPU time, best of {args.repeats} "
        f"interleaved rounds:"
    )
    for every, rev in rows:
        wall = min(walls[every, rev])
        tracker = f" (tracker of {rev})" if rev else ""
        line = f"  sharpness_every = {every:3d}{tracker}: {wall:7.3f} s  ({wall / base:.2f}x)"
        if per_measurement[every, rev]:
            mean, measurements = per_measurement[every, rev]  # batched: one per chunk and marked step
            marks = len([t for t in range(args.steps + 1) if t % every == 0 or t == args.steps])
            chunk_step = base / (args.steps + 1) / (measurements / marks)  # one step of one chunk
            line += (
                f", {mean:.1f} batched products per measurement, one measurement = "
                f"{(wall - base) / measurements / chunk_step:.1f} training steps"
            )
        print(line)
    return 0


def _tracker_of(rev: str, counts: list):
    """The SharpnessTracker class of ``rev``'s core/sharpness.py, loaded beside today's package."""
    import importlib.util
    import subprocess
    from pathlib import Path

    source = subprocess.run(
        ["git", "show", f"{rev}:core/sharpness.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout
    spec = importlib.util.spec_from_loader("descentlab._sharpness_" + rev.replace("~", "_"), loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "descentlab"
    exec(compile(source, f"{rev}:core/sharpness.py", "exec"), module.__dict__)

    class Tracker(module.SharpnessTracker):
        def measure(self, instance, params, runs, batch=None, trace=None):
            before = self.products
            out = super().measure(instance, params, runs, batch)
            counts.append(self.products - before)
            return out

    return Tracker


if __name__ == "__main__":
    raise SystemExit(main())
