"""Speed of one forward + backward pass of the engine, per run-step, for R = 1 and R = 64 runs.

    python benchmarks/engine.py

The job is the spirals MLP of the dashboard's default comparison (2-32-32-1 tanh, binary
cross-entropy on logits, 256 points, full batch). R = 64 stacks 64 runs along the run axis in one
call; the figure printed is microseconds per run-step (one run's forward + backward), so the two
rows compare directly. Before timing, the stacked gradient of every run is checked against the
same run computed alone.
"""

from __future__ import annotations

import time

import numpy as np

from descentlab import get_registry
from descentlab.allocator import keep_freed_memory

REPEATS = 7


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
        start = time.perf_counter()
        for _ in range(calls):
            instance.loss_and_grad(params, out=grad)
        best = min(best, (time.perf_counter() - start) / (calls * runs))
    return best * 1e6


def check_stacking(instance, runs: int = 64) -> None:
    stacked = instance.loss_and_grad(instance.init_params(list(range(runs))))[1]
    for r in (0, runs // 2, runs - 1):
        alone = instance.loss_and_grad(instance.init_params([r]))[1]
        np.testing.assert_allclose(stacked[r], alone[0], rtol=1e-12, atol=1e-15)


def main() -> None:
    keep_freed_memory()  # as the runner does
    instance = spirals_instance()
    check_stacking(instance)
    print(f"spirals MLP {instance.model!r}, {instance.n_train} training points, full batch")
    print(f"{'runs R':>7} {'dtype':>8} {'µs per run-step':>16}")
    for runs in (1, 64):
        for dtype in (np.float64, np.float32):
            print(f"{runs:>7} {np.dtype(dtype).name:>8} {per_run_step_us(instance, runs, dtype):>16.1f}")


if __name__ == "__main__":
    main()
