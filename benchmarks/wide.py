"""Wide networks: which execution plan is fastest, processes or BLAS threads (issue #17; docs/dev/speed.md).

    python benchmarks/wide.py                      # widths 128 and 512, 8 runs, 5 rounds
    python benchmarks/wide.py --widths 32 64 128 256 512 --rounds 3
    python benchmarks/wide.py --quick              # smoke test

Job: 2-W-W-1 tanh MLP on 256 spirals points, full batch, GD x ``--runs`` learning rates, float64.
For each width, in every round and in turn (so a burst of load from other processes hits all):

  (a) ``run_experiment(workers=2)``: 2 worker processes with 1 BLAS thread each
  (b) ``run_experiment(workers=1)`` in this process with 2 BLAS threads
  (c) ``run_experiment(workers=1)`` in this process with 1 BLAS thread
  (d) the bare matrix products of one step of every run (each ``np.matmul`` of ``MLP.loss_and_grad``,
      on arrays of the same shapes) with 1 and with 2 BLAS threads
  (j) JAX's jitted step (vmap over the runs, float64, XLA's default threads) when jax is installed

A step is the time of every run's step: the difference of a long and a short run over their
difference in steps, so one-off costs (the pool's start, initial weights, the tables) cancel. A
plan's figure is the median long run minus the median short run over all rounds (the ``round:``
lines print each round's own difference); the products' and JAX's, the median over rounds.
Results of (a), (b), (c) are checked bit-identical first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from descentlab import runner
from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment

SAMPLES = 256


def spec(width: int, runs: int, steps: int) -> dict:
    return {
        "name": f"bench-wide-{width}",
        "steps": steps,
        "seeds": [0],
        "eval_every": 0,
        "problem": {
            "name": "spirals",
            "samples": SAMPLES,
            "test_fraction": 0.0,
            "hidden": [width, width],
            "activation": "tanh",
        },
        "rules": [{"rule": "gd", "learning_rate": [float(a) for a in np.logspace(-3, -1, runs)]}],
    }


def matmuls_of_one_step(sizes, runs, samples, rng):
    """A function doing every ``np.matmul`` of one ``MLP.loss_and_grad`` on ``runs`` stacked runs."""
    x = rng.standard_normal((samples, sizes[0]))  # inputs shared by all runs (2-D)
    acts = [x] + [rng.standard_normal((runs, samples, n)) for n in sizes[1:]]
    ws = [rng.standard_normal((runs, a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    deltas = [rng.standard_normal((runs, samples, b)) for b in sizes[1:]]
    outs_fwd = [np.empty((runs, samples, b)) for b in sizes[1:]]
    outs_gw = [np.empty((runs, a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    outs_gb = [np.empty((runs, b)) for b in sizes[1:]]
    ones = np.ones(samples)
    last = len(ws) - 1

    def step():
        for i, w in enumerate(ws):  # forward: z_i = a_{i-1} W_i
            np.matmul(acts[i], w, out=outs_fwd[i])
        for i in range(last, -1, -1):
            a_in = acts[i]
            np.matmul(a_in.T if a_in.ndim == 2 else a_in.transpose(0, 2, 1), deltas[i], out=outs_gw[i])
            np.matmul(ones, deltas[i], out=outs_gb[i])
            if i > 0 and ws[i].shape[2] > 1:  # the one-output layer's is a broadcast, not a matmul
                np.matmul(deltas[i], ws[i].transpose(0, 2, 1))

    return step


def jax_step(sizes, runs, samples, seed=0):
    """A function timing ``n`` jitted GD steps of ``runs`` stacked tanh MLPs (BCE on logits, full
    batch, float64) in seconds per step, or None without jax."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((samples, sizes[0])))
    y = jnp.asarray((rng.random((samples, 1)) > 0.5).astype(np.float64))
    params = [
        (jnp.asarray(rng.standard_normal((runs, a, b)) / np.sqrt(a)), jnp.zeros((runs, b)))
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    lrs = jnp.asarray(np.logspace(-3, -1, runs))

    def loss(ps):
        a = x
        for i, (w, b) in enumerate(ps):
            z = a @ w + b
            a = z if i == len(ps) - 1 else jnp.tanh(z)
        return jnp.mean(jnp.maximum(a, 0) - a * y + jnp.log1p(jnp.exp(-jnp.abs(a))))

    def one(ps, lr):
        value, grads = jax.value_and_grad(loss)(ps)
        return [(w - lr * gw, b - lr * gb) for (w, b), (gw, gb) in zip(ps, grads)], value

    step = jax.jit(jax.vmap(one))
    state = {"params": params}

    def run(n):
        ps = state["params"]
        start = time.perf_counter()
        for _ in range(n):
            ps, value = step(ps, lrs)
        jax.block_until_ready(ps)
        state["params"] = ps
        return (time.perf_counter() - start) / n

    run(2)  # compile
    return run


def _jax_server(conn, sizes, runs, samples):
    """JAX in its own (spawned) process: its threads must not be forked with the runner's pool."""
    run = jax_step(sizes, runs, samples)
    conn.send(run is not None)
    while run is not None:
        n = conn.recv()
        if n is None:
            break
        conn.send(run(n))


class JaxSide:
    """The JAX step timed in a spawned process, on request, so its rounds interleave with ours."""

    def __init__(self, sizes, runs, samples):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_jax_server, args=(child, sizes, runs, samples), daemon=True)
        self.process.start()
        self.available = self.conn.recv()

    def time(self, n: int) -> float:
        self.conn.send(n)
        return self.conn.recv()

    def close(self) -> None:
        if self.available:
            self.conn.send(None)
        self.process.join(timeout=10)


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def plan_label(workers: int) -> str:
    """Which of the measured plans the runner's default is: worker processes have one BLAS thread
    each, a run in this process leaves BLAS as it is."""
    if workers > 1:
        return "2 processes x 1 BLAS thread"
    threads = max(i.get("num_threads", 1) for i in threadpool_info())
    return f"1 process x {threads} BLAS thread" + ("s" if threads > 1 else "")


def in_process(e, registry, threads):
    with threadpool_limits(threads, user_api="blas"):
        return run_experiment(e, registry=registry, workers=1)


def same(a, b) -> bool:
    return a.metrics.equals(b.metrics) and all(np.array_equal(v, b.weights[k]) for k, v in a.weights.items())


def bench(registry, width, runs, rounds, target_seconds):
    sizes = [2, width, width, 1]
    probe = Experiment.from_dict(spec(width, runs, 1), registry)
    instance = registry.problem("spirals").build(probe.problem_settings)
    units = instance.layout.size * SAMPLES
    # steps for ~target_seconds of the slowest plan (1 x 1), from ~0.4 ns per multiply-add unit (measured)
    per_step_guess = runs * units * 0.4e-9
    long_steps = max(20, int(target_seconds / per_step_guess) // 10 * 10)
    short_steps = max(long_steps // 6, 2)
    e, short = (Experiment.from_dict(spec(width, runs, s), registry) for s in (long_steps, short_steps))
    plan = runner.default_workers(e, instance, registry)
    print(
        f"width {width}: {instance.model}, {runs} runs, {SAMPLES} points, P = {instance.layout.size}, "
        f"{units / 1e6:.2f}M multiply-adds units per run-step, {long_steps} - {short_steps} steps; "
        f"the runner's default for it: {plan_label(plan)}",
        flush=True,
    )
    # bit-identity of the plans first, untimed
    check = Experiment.from_dict(spec(width, runs, 5), registry)
    ref = in_process(check, registry, 1)
    for label, other in (
        ("2 x 1", run_experiment(check, registry=registry, workers=2)),
        ("1 x 2", in_process(check, registry, 2)),
    ):
        if not same(ref, other):
            sys.exit(f"width {width}: plan {label} gives other results than 1 x 1")
    print("  results of 2 x 1, 1 x 2 and 1 x 1 are bit-identical", flush=True)

    matmul = matmuls_of_one_step(sizes, runs, SAMPLES, np.random.default_rng(0))
    jax_side = JaxSide(sizes, runs, SAMPLES)
    n_mm = max(10, long_steps - short_steps)

    def mm(threads):
        with threadpool_limits(threads, user_api="blas"):
            matmul()
            start = time.perf_counter()
            for _ in range(n_mm):
                matmul()
            return (time.perf_counter() - start) / n_mm

    runs_timed: dict[str, tuple[list[float], list[float]]] = {}  # label: (long runs, short runs)

    def diff(label, fn):
        t0 = time.perf_counter()
        fn(e)
        t1 = time.perf_counter()
        fn(short)
        t2 = time.perf_counter()
        longs, shorts = runs_timed.setdefault(label, ([], []))
        longs.append(t1 - t0)
        shorts.append(t2 - t1)
        return ((t1 - t0) - (t2 - t1)) / (long_steps - short_steps)

    plans = {
        "2 processes x 1 BLAS thread": lambda x: run_experiment(x, registry=registry, workers=2),
        "1 process x 2 BLAS threads": lambda x: in_process(x, registry, 2),
        "1 process x 1 BLAS thread": lambda x: in_process(x, registry, 1),
    }
    samples: dict[str, list[float]] = {k: [] for k in [*plans, "matmuls 1 thread", "matmuls 2 threads", "jax"]}
    for _ in range(rounds):
        for label, fn in plans.items():
            samples[label].append(diff(label, fn))
        samples["matmuls 1 thread"].append(mm(1))
        samples["matmuls 2 threads"].append(mm(2))
        if jax_side.available:
            samples["jax"].append(jax_side.time(n_mm))
        print("    round: " + ", ".join(f"{v[-1] * 1e3:.1f}" for v in samples.values() if v) + " ms", flush=True)
    jax_side.close()
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    # a plan's step from the median long run and the median short run: a burst of load in one
    # round's short run then cannot make that round's difference (and the median) too small
    for label, (longs, shorts) in runs_timed.items():
        med[label] = (statistics.median(longs) - statistics.median(shorts)) / (long_steps - short_steps)
    mm1, mm2 = med["matmuls 1 thread"], med["matmuls 2 threads"]
    jx = med.get("jax")
    print(f"  one step of all {runs} runs, median of {rounds} interleaved rounds ({load()}):")
    for label in plans:
        t = med[label]
        text = f"    {label:<30} {t * 1e3:8.2f} ms   {t / mm1:5.2f}x matmuls@1   {t / mm2:5.2f}x matmuls@2"
        if jx is not None:
            text += f"   {t / jx:5.2f}x JAX"
        print(text)
    print(f"    {'matrix products, 1 thread':<30} {mm1 * 1e3:8.2f} ms")
    print(f"    {'matrix products, 2 threads':<30} {mm2 * 1e3:8.2f} ms   ({mm1 / mm2:.2f}x faster)")
    if jx is not None:
        print(f"    {'JAX jitted step':<30} {jx * 1e3:8.2f} ms")
    print(
        "    spread (min-max over rounds): "
        + ", ".join(f"{k} {min(v) * 1e3:.1f}-{max(v) * 1e3:.1f}" for k, v in samples.items() if v)
    )
    return {"width": width, "units": units, "plan": plan_label(plan), **med}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="rough length of the slowest plan's long run")
    parser.add_argument("--quick", action="store_true", help="short runs, 2 rounds (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 0.3
    registry = load_registry(entry_points=False, use_env=False)
    run_experiment(
        Experiment.from_dict({"steps": 2, "problem": "quadratic", "rules": [{"rule": "gd"}]}, registry),
        registry=registry,
        workers=1,
    )  # warm-up: imports and first-call costs
    blas = [(i.get("internal_api"), i.get("version"), i.get("architecture")) for i in threadpool_info()]
    try:
        from importlib.metadata import version

        jax_text = f"jax {version('jax')} (its own process, XLA's default threads)"
    except Exception:
        jax_text = "jax not installed (no JAX column)"
    print(f"numpy {np.__version__}, BLAS {blas}, {jax_text}, {os.cpu_count()} cpus, {load()}", flush=True)
    out = [bench(registry, w, args.runs, args.rounds, args.seconds) for w in args.widths]
    print(f"after: {load()}")
    print("targets (issue #17): best plan <= 1.0x JAX's step, <= 1.3x its matrix products at 2 BLAS threads")
    for r in out:
        best = min(r[k] for k in r if "BLAS" in k)
        own = r[r["plan"]]
        text = f"  width {r['width']}: runner's default ({r['plan']}) {own / r['matmuls 2 threads']:.2f}x matmuls@2"
        text += f" (best forced plan {best / r['matmuls 2 threads']:.2f}x)"
        if "jax" in r:
            text += f", {own / r['jax']:.2f}x JAX"
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
