"""Speed of the sweep runner against a plain numpy loop, one configuration at a time (quoted in docs/dev/speed.md).

    python benchmarks/sweep.py            # all jobs, a few minutes on 2 cores
    python benchmarks/sweep.py --quick    # fewer steps, for a smoke test

Jobs (see the issue and shared/DESIGN.md "run axis"):
  typical  2-32-32-1 tanh MLP, 256 spirals points, full batch, 500 steps, GD / momentum / Adam x 16
           learning rates in [1e-3, 10], float64 (and float32 for the float32 ratio)
  tiny     Rosenbrock, 256 runs (GD / momentum / Nesterov / Adam x 8 α x 8 starting points), 1000 steps
  rosenbrock512  Rosenbrock, 512 stacked runs of one rule (8 α x 64 starting points), 2000 steps, for
           GD, momentum and Adam in turn: µs per run-step of the whole run_experiment (issue #17)
  large    MLP 64-256-256-10 on digits, mini-batches of 512, Adam, float32: a full runner step against
           that step's matrix products alone (both with one BLAS thread)
Before timing anything, the runner's loss curves are checked against the baseline's in float64.
Runner and baseline are timed under the same conditions: alternately in the same run (each the best
of REPEAT interleaved repeats, so a burst of load from other processes hits both), and with one BLAS
thread in this process (the runner's worker processes use one each). The load average is printed
before and after: the 2-process figures need a second core that is actually free.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time

import numpy as np

from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment

FACTOR = 1e4  # the runner's default divergence_factor; the baseline stops the same way


# ---- the plain numpy baseline: one configuration at a time, everything written out ---------------------


def plain_mlp(x, y, weights, rule, lr, steps, mu=0.9, betas=(0.9, 0.999), eps=1e-8):
    """Full-batch training of a tanh MLP with binary cross-entropy on logits; returns the loss curve."""
    ws = [w.copy() for w in weights]
    state = [np.zeros_like(w) for w in ws]
    second = [np.zeros_like(w) for w in ws]
    n = len(x)
    losses = []
    for t in range(steps + 1):
        acts = [x]
        for i in range(0, len(ws), 2):  # forward: a_i = tanh(a_{i-1} W_i + b_i), linear output
            z = acts[-1] @ ws[i] + ws[i + 1]
            acts.append(z if i == len(ws) - 2 else np.tanh(z))
        out = acts[-1]
        loss = np.mean(np.maximum(out, 0) - out * y + np.log1p(np.exp(-np.abs(out))))
        losses.append(loss)
        if not math.isfinite(loss) or loss > FACTOR * losses[0] or t == steps:
            break
        delta = (1.0 / (1.0 + np.exp(-out)) - y) / n  # ∂J/∂z of the output layer
        grads = [None] * len(ws)
        for layer in range(len(ws) // 2 - 1, -1, -1):  # backward: chain rule layer by layer
            grads[2 * layer] = acts[layer].T @ delta
            grads[2 * layer + 1] = delta.sum(axis=0)
            if layer:
                delta = (delta @ ws[2 * layer].T) * (1.0 - acts[layer] ** 2)
        step_rule(rule, ws, grads, state, second, lr, t, mu, betas, eps)
    return np.array(losses)


def step_rule(rule, ws, grads, state, second, lr, t, mu, betas, eps):
    """GD, momentum / Nesterov (PyTorch: v = g at first, then v = μv + g) and Adam (PyTorch), in place."""
    for i, g in enumerate(grads):
        if rule == "gd":
            ws[i] = ws[i] - lr * g
        elif rule in ("momentum", "nesterov"):
            state[i] = g.copy() if t == 0 else mu * state[i] + g
            direction = g + mu * state[i] if rule == "nesterov" else state[i]
            ws[i] = ws[i] - lr * direction
        else:  # adam
            b1, b2 = betas
            state[i] = b1 * state[i] + (1 - b1) * g
            second[i] = b2 * second[i] + (1 - b2) * g * g
            denominator = np.sqrt(second[i]) / math.sqrt(1 - b2 ** (t + 1)) + eps
            ws[i] = ws[i] - (lr / (1 - b1 ** (t + 1))) * state[i] / denominator


def plain_rosenbrock(start, rule, lr, steps, a=1.0, b=100.0, mu=0.9, betas=(0.9, 0.999), eps=1e-8):
    """The same descent rules on f = (a − x)² + b (y − x²)², one starting point at a time."""
    theta = [np.array(start, dtype=float)]
    state, second = [np.zeros(2)], [np.zeros(2)]
    losses = []
    for t in range(steps + 1):
        x, y = theta[0]
        valley = y - x * x
        loss = (a - x) ** 2 + b * valley**2
        losses.append(loss)
        if not math.isfinite(loss) or loss > FACTOR * losses[0] or t == steps:
            break
        grad = np.array([-2.0 * (a - x) - 4.0 * b * x * valley, 2.0 * b * valley])
        step_rule(rule, theta, [grad], state, second, lr, t, mu, betas, eps)
    return np.array(losses)


# ---- helpers -------------------------------------------------------------------------------------------

REPEAT = 3  # each timing is the best of this many repeats: the machine may be shared


def timed(function, *args, repeat=None, **kwargs):
    """``(value, seconds)``: the fastest of ``repeat`` calls (other processes only ever add time)."""
    best = math.inf
    for _ in range(REPEAT if repeat is None else repeat):
        start = time.perf_counter()
        value = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return value, best


def timed_together(functions: dict, repeat=None) -> dict:
    """``{label: seconds}``, the fastest of ``repeat`` rounds; each round calls every function once, in
    turn, so the compared timings are taken side by side (a busy spell slows all of them, not one)."""
    best = {label: math.inf for label in functions}
    for _ in range(REPEAT if repeat is None else repeat):
        for label, function in functions.items():
            start = time.perf_counter()
            function()
            best[label] = min(best[label], time.perf_counter() - start)
    return best


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def curves(results):
    return {run_id: group["loss"].to_numpy() for run_id, group in results.metrics.groupby("run_id")}


def compare(runner_curves, baseline_curves, what, full):
    """The same loss curves up to rounding: in full (same length: same divergence step) for the runs in
    ``full``, the first 10 steps for the others. Runner and baseline sum in different orders, so
    they differ by ~1e-16 per step; at large α the dynamics are chaotic and Adam divides by √v, and
    both amplify that rounding until the curves drift apart (measured: from step ~10 at α = 10, from
    step ~30-400 for Adam), which says nothing about correctness. Returns the largest relative gap."""
    worst = 0.0
    for run_id, expected in baseline_curves.items():
        got = runner_curves[run_id]
        if run_id not in full:
            n = min(10, len(got), len(expected))
            got, expected = got[:n], expected[:n]
        if len(got) != len(expected):
            sys.exit(f"{what}: run {run_id} has {len(got)} loss rows in the runner, {len(expected)} in the baseline")
        finite = np.isfinite(expected)
        if not np.array_equal(finite, np.isfinite(got)):
            sys.exit(f"{what}: run {run_id}: non-finite losses differ")
        gap = np.abs(got[finite] - expected[finite]) / np.maximum(np.abs(expected[finite]), 1e-300)
        worst = max(worst, float(gap.max(initial=0.0)))
    if worst > 1e-8:
        sys.exit(f"{what}: runner and baseline loss curves differ (max relative gap {worst:.2g})")
    return worst


def line(label, seconds, run_steps, reference=None):
    text = f"  {label:<52} {seconds:8.2f} s  {seconds / run_steps * 1e6:9.2f} µs/run-step"
    if reference is not None:
        text += f"   {reference / seconds:6.2f}x"
    print(text, flush=True)


# ---- jobs ----------------------------------------------------------------------------------------------


def typical_spec(steps: int, n_lr: int, *, seeds: int = 1, dtype: str = "float64", name: str = "bench-typical") -> dict:
    """The typical job's experiment: 2-32-32-1 tanh on 256 spirals points, GD / momentum / Adam x
    ``n_lr`` α in [1e-3, 10] x seeds 0 .. ``seeds`` - 1 (benchmarks/frameworks.py runs it too)."""
    lrs = [float(v) for v in np.logspace(-3, 1, n_lr)]
    return {
        "name": name,
        "steps": steps,
        "seeds": list(range(seeds)),
        "eval_every": 0,
        "dtype": dtype,
        "problem": {"name": "spirals", "samples": 256, "test_fraction": 0.0, "hidden": [32, 32], "activation": "tanh"},
        "rules": [{"rule": rule, "learning_rate": lrs} for rule in ("gd", "momentum", "adam")],
    }


# log10 bounds of the rosenbrock512 job's 8 α per rule
ROSENBROCK512_ALPHAS = {"gd": (-4, -2.5), "momentum": (-5, -3), "adam": (-3, -1.3)}


def rosenbrock512_spec(rule: str, steps: int) -> dict:
    """512 stacked Rosenbrock runs of ``rule``: 8 α x 64 starting points (benchmarks/frameworks.py runs it too)."""
    return {
        "name": f"bench-rosenbrock512-{rule}",
        "steps": steps,
        "seeds": 64,
        "eval_every": 0,
        "problem": {"name": "rosenbrock", "start_spread": 0.2},
        "rules": [{"rule": rule, "learning_rate": [float(a) for a in np.logspace(*ROSENBROCK512_ALPHAS[rule], 8)]}],
    }


def typical(registry, steps, n_lr):
    spec = typical_spec(steps, n_lr)
    e64 = Experiment.from_dict(spec, registry)
    e32 = Experiment.from_dict({**spec, "dtype": "float32"}, registry)
    instance = registry.problem("spirals").build(e64.problem_settings)
    x, y = instance.dataset.x_train, instance.dataset.y_train
    run_steps = e64.n_runs * steps
    print(
        f"typical job: {instance.model}, {len(x)} points, full batch, {steps} steps, "
        f"{e64.n_runs} runs (gd, momentum, adam x {n_lr} α in [1e-3, 10])"
    )

    def baseline():
        out = {}
        for run in e64.runs():
            weights = [instance.init_params([run.seed])[0]]
            flat = weights[0]
            ws = [instance.layout.view(flat[None], e.name)[0].copy() for e in instance.layout.entries]
            out[run.run_id] = plain_mlp(x, y, ws, run.rule, run.learning_rate, steps)
        return out

    def one_at_a_time(experiment):
        for run in experiment.runs():
            single = Experiment.from_dict(
                {
                    **experiment.to_dict(),
                    "seeds": [run.seed],
                    "rules": [{**experiment.entries[run.entry].to_dict(), "learning_rate": run.learning_rate}],
                },
                registry,
            )
            run_experiment(single, registry=registry, workers=1)

    # equality first, untimed
    res64 = run_experiment(e64, registry=registry)
    stable = {run.run_id for run in e64.runs() if run.rule in ("gd", "momentum") and run.learning_rate <= 0.3}
    gap = compare(curves(res64), baseline(), "typical float64", stable)
    print(
        f"  loss curves of runner and baseline agree in float64: max relative gap {gap:.1e} (whole curves "
        f"of the {len(stable)} GD/momentum runs with α <= 0.3, first 10 steps of all {e64.n_runs})"
    )
    res32 = run_experiment(e32, registry=registry)
    times = timed_together(
        {
            "base": baseline,
            "run": lambda: run_experiment(e64, registry=registry),
            "run32": lambda: run_experiment(e32, registry=registry),
            "serial": lambda: run_experiment(e64, registry=registry, workers=1),
        }
    )
    t_base, t_run, t_run32, t_serial = times["base"], times["run"], times["run32"], times["serial"]
    _, t_engine = timed(one_at_a_time, e64, repeat=1)  # ~4 s, a reference only
    line("plain numpy loop, one configuration at a time", t_base, run_steps)
    line("descentlab engine, one configuration at a time", t_engine, run_steps, t_base)
    line("descentlab runner, float64, 1 process", t_serial, run_steps, t_base)
    line(f"descentlab runner, float64 ({res64.meta['workers']} processes)", t_run, run_steps, t_base)
    line(f"descentlab runner, float32 ({res32.meta['workers']} processes)", t_run32, run_steps, t_base)
    print(f"  runner vs one configuration at a time through the same engine: {t_engine / t_run:.2f}x")
    print(f"  float32 vs float64 (runner): {t_run / t_run32:.2f}x")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  peak memory: {own:.0f} MB this process, {children:.0f} MB largest worker process")
    return {"vs_baseline": t_base / t_run, "float32": t_run / t_run32, "peak_mb": max(own, children)}


def tiny(registry, steps):
    alphas = {
        "gd": np.logspace(-4, -2.5, 8),
        "momentum": np.logspace(-5, -3, 8),
        "nesterov": np.logspace(-5, -3, 8),
        "adam": np.logspace(-3, -1.3, 8),
    }
    spec = {
        "name": "bench-tiny",
        "steps": steps,
        "seeds": 8,
        "eval_every": 0,
        "problem": {"name": "rosenbrock", "start_spread": 0.2},
        "rules": [{"rule": rule, "learning_rate": [float(a) for a in lr]} for rule, lr in alphas.items()],
    }
    e = Experiment.from_dict(spec, registry)
    instance = registry.problem("rosenbrock").build(e.problem_settings)
    run_steps = e.n_runs * steps
    print(
        f"tiny job: Rosenbrock, {e.n_runs} runs (gd, momentum, nesterov, adam x 8 α x 8 starting points), {steps} steps"
    )

    def baseline():
        return {
            run.run_id: plain_rosenbrock(instance.init_params([run.seed])[0], run.rule, run.learning_rate, steps)
            for run in e.runs()
        }

    base_curves = baseline()  # equality first, untimed
    res = run_experiment(e, registry=registry)
    stable = {run_id for run_id, c in base_curves.items() if len(c) == steps + 1}
    gap = compare(curves(res), base_curves, "tiny float64", stable)

    def runner():
        return run_experiment(e, registry=registry)

    times = timed_together({"base": baseline, "run": runner})
    # the runner's ~40 ms is more exposed to a short burst of load than the baseline's ~1.3 s: as
    # before, it also gets 2 x REPEAT further repeats right after
    t_base, t_run = times["base"], min(times["run"], timed(runner, repeat=2 * REPEAT)[1])
    print(
        f"  loss curves agree in float64: max relative gap {gap:.1e} (whole curves of the {len(stable)} "
        f"runs that finish, first 10 steps of the others; {int((res.runs.status == 'diverged').sum())} diverged)"
    )
    line("plain numpy loop, one configuration at a time", t_base, run_steps)
    line(f"descentlab runner ({res.meta['workers']} process(es))", t_run, run_steps, t_base)
    return {"vs_baseline": t_base / t_run}


def rosenbrock512(registry, steps, repeat=7):
    """µs per run-step of 512 stacked Rosenbrock runs of one rule: a whole ``run_experiment`` (setup,
    steps, tables) in one process, best of ``repeat`` rounds that time every rule in turn."""
    experiments = {
        rule: Experiment.from_dict(rosenbrock512_spec(rule, steps), registry) for rule in ROSENBROCK512_ALPHAS
    }
    print(
        f"rosenbrock512 job: Rosenbrock, 512 runs of one rule (8 α x 64 starting points), {steps} steps, "
        f"best of {repeat}"
    )

    times = timed_together(
        {rule: (lambda e=e: run_experiment(e, registry=registry, workers=1)) for rule, e in experiments.items()},
        repeat=repeat,
    )
    out = {}
    for rule, e in experiments.items():
        us = times[rule] / (e.n_runs * steps) * 1e6
        out[rule] = us
        print(f"  {rule:<10} {times[rule]:7.3f} s  {us:6.3f} µs/run-step", flush=True)
    return out


def large(registry, steps):
    def experiment(n_steps):
        spec = {
            "name": "bench-large",
            "steps": n_steps,
            "seeds": [0, 1],
            "eval_every": 0,
            "dtype": "float32",
            "batch_size": 512,
            "problem": {"name": "digits", "hidden": [256, 256]},
            "rules": [{"rule": "adam", "learning_rate": 1e-3}],
        }
        return Experiment.from_dict(spec, registry)

    e, short = experiment(steps), experiment(max(steps // 6, 1))
    instance = registry.problem("digits").build(e.problem_settings)
    sizes = instance.model.sizes
    runs, batch = e.n_runs, e.batch_size
    print(
        f"large-layer job: {instance.model}, batch {batch}, Adam, float32, {runs} runs, {steps} steps, one BLAS thread"
    )
    run_experiment(e, registry=registry, workers=1)  # warm-up: the digits data, first-call costs

    rng = np.random.default_rng(0)
    f32 = np.float32
    acts = [rng.standard_normal((runs, batch, n)).astype(f32) for n in sizes]
    ws = [rng.standard_normal((runs, a, b)).astype(f32) for a, b in zip(sizes[:-1], sizes[1:])]
    outs_fwd = [np.empty((runs, batch, b), f32) for b in sizes[1:]]
    outs_gw = [np.empty((runs, a, b), f32) for a, b in zip(sizes[:-1], sizes[1:])]
    outs_back = [np.empty((runs, batch, a), f32) for a in sizes[1:-1]]

    def matmuls():
        for i, w in enumerate(ws):  # forward: a_{i} W_{i+1}
            np.matmul(acts[i], w, out=outs_fwd[i])
        for i, w in enumerate(ws):  # weight gradients: a_iᵀ δ_{i+1}
            np.matmul(acts[i].transpose(0, 2, 1), acts[i + 1], out=outs_gw[i])
        for i in range(1, len(ws)):  # δ_i = (δ_{i+1} W_{i+1}ᵀ) ⊙ f'
            np.matmul(acts[i + 1], ws[i].transpose(0, 2, 1), out=outs_back[i - 1])

    matmuls()
    # A step's cost is the difference of a long and a short run over their difference in steps: the
    # one-off work of run_experiment (loading digits through scikit-learn, initial weights, the
    # tables; ~40 ms, measured) is not part of a step.
    times = timed_together(
        {
            "run": lambda: run_experiment(e, registry=registry, workers=1),
            "short run": lambda: run_experiment(short, registry=registry, workers=1),
            "matmuls": lambda: [matmuls() for _ in range(steps)],
        },
        repeat=REPEAT + 1,
    )
    per_step = (times["run"] - times["short run"]) / (e.steps - short.steps)
    t_mm = times["matmuls"] / steps
    print(
        f"  runner step {per_step * 1e3:.2f} ms, its matrix products alone {t_mm * 1e3:.2f} ms: {per_step / t_mm:.2f}x"
    )
    return {"step_vs_matmul": per_step / t_mm}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and learning rates (smoke test)")
    parser.add_argument("--job", choices=("typical", "tiny", "rosenbrock512", "large", "all"), default="all")
    args = parser.parse_args(argv)
    registry = load_registry(entry_points=False, use_env=False)
    # warm-up: imports (pandas, pyarrow) and first-call costs are not part of any timing
    run_experiment(
        Experiment.from_dict({"steps": 2, "problem": "quadratic", "rules": [{"rule": "gd"}]}, registry),
        registry=registry,
        workers=1,
    )
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cpus, {load()}")
    # One BLAS thread in this process for every job: the baseline and the in-process runner get the same
    # BLAS as the runner's worker processes (one thread each); multi-threaded BLAS on these small
    # matrices only spin-waits, and on a shared 2-core machine it swings timings by up to 10x.
    try:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1, user_api="blas")
    except ImportError:
        limit = None
        print("  (threadpoolctl missing: BLAS keeps its default threads)")
    summary = {}
    if args.job in ("typical", "all"):
        summary["typical"] = typical(registry, 60 if args.quick else 500, 4 if args.quick else 16)
    if args.job in ("tiny", "all"):
        summary["tiny"] = tiny(registry, 100 if args.quick else 1000)
    if args.job in ("rosenbrock512", "all"):
        summary["rosenbrock512"] = rosenbrock512(registry, 200 if args.quick else 2000, 2 if args.quick else 7)
    if args.job in ("large", "all"):
        summary["large"] = large(registry, 10 if args.quick else 60)
    del limit
    print(f"after the jobs: {load()}")
    print("targets:")
    if "typical" in summary:
        s = summary["typical"]
        print(f"  runner >= 2x the plain loop (float64): {s['vs_baseline']:.2f}x")
        print(f"  float32 >= 1.8x float64: {s['float32']:.2f}x")
        print(f"  peak memory < 500 MB: {s['peak_mb']:.0f} MB")
    if "tiny" in summary:
        print(f"  tiny job >= 30x the plain loop: {summary['tiny']['vs_baseline']:.1f}x")
    if "rosenbrock512" in summary:
        worst = max(summary["rosenbrock512"].values())
        print(f"  rosenbrock512 <= 0.05 µs/run-step (slowest rule): {worst:.3f} µs")
    if "large" in summary:
        print(f"  large-layer step <= 1.4x its matrix products: {summary['large']['step_vs_matmul']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
