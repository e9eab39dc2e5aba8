"""Speed of one forward + backward pass of the engine per run-step, for R stacked runs (the chunk size).

    python benchmarks/engine.py                 # as the runner works: keep_freed_memory(), one BLAS thread
    python benchmarks/engine.py --malloc-default # glibc's default mmap threshold, for comparison

The job is the spirals MLP of the dashboard's default comparison (2-32-32-1 tanh, binary
cross-entropy on logits, 256 points, full batch). R runs are stacked along the run axis in one
call; the figure printed is CPU microseconds per run-step (one run's forward + backward), so the
rows compare directly and the smallest one is the chunk size the runner should use. Before
timing, the stacked gradient of every run is checked against the same run computed alone.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from descentlab import get_registry
from descentlab.allocator import keep_freed_memory

REPEATS = 7
RUNS = (1, 2, 4, 8, 16, 32, 64)


def spirals_instance():
    problem = get_registry().problem("spirals")
    settings = {h.name: h.default for h in problem.settings}
    settings.update(samples=256, hidden=[32, 32], activation="tanh", test_fraction=0.0)
    return problem.build(settings)


def per_run_step_us(instance, runs: int, dtype) -> float:
    params = instance.init_params(list(range(runs)), dtype)
    grad = np.empty_like(params)
    calls = max(10, 2000 // runs)
    instance.loss_and_grad(params, out=grad)  # warm-up: casts the data once, faults the pages in
    best = float("inf")
    for _ in range(REPEATS):  # the minimum over repeats is the least disturbed by other processes
        start = time.process_time()  # CPU time: a busy second core does not inflate it
        for _ in range(calls):
            instance.loss_and_grad(params, out=grad)
        best = min(best, (time.process_time() - start) / (calls * runs))
    return best * 1e6


def check_stacking(instance, runs: int = 64) -> None:
    stacked = instance.loss_and_grad(instance.init_params(list(range(runs))))[1]
    for r in (0, runs // 2, runs - 1):
        alone = instance.loss_and_grad(instance.init_params([r]))[1]
        np.testing.assert_allclose(stacked[r], alone[0], rtol=1e-12, atol=1e-15)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--malloc-default",
        action="store_true",
        help="leave glibc's mmap threshold at its default (the runner raises it)",
    )
    args = parser.parse_args(argv)
    tuned = False if args.malloc_default else keep_freed_memory()  # as the runner does
    instance = spirals_instance()
    check_stacking(instance)
    print(
        f"spirals MLP {instance.model!r}, {instance.n_train} training points, full batch, "
        f"keep_freed_memory: {tuned}, one BLAS thread"
    )
    print(f"{'runs R':>7} {'float64 µs/run-step':>20} {'float32 µs/run-step':>20}")
    try:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1, user_api="blas")  # as in the runner's worker processes
    except ImportError:
        limit = None
    for runs in RUNS:
        f64 = per_run_step_us(instance, runs, np.float64)
        f32 = per_run_step_us(instance, runs, np.float32)
        print(f"{runs:>7} {f64:>20.1f} {f32:>20.1f}", flush=True)
    del limit


if __name__ == "__main__":
    main()
