"""Descentlab against JAX and PyTorch on the typical job and on Rosenbrock 512 (issue #17; docs/dev/speed.md).

    python benchmarks/frameworks.py                  # both jobs, float64 and float32, 3 rounds: ~10 min on 2 cores
    python benchmarks/frameworks.py --job typical --rounds 5 --torch-rounds 2
    python benchmarks/frameworks.py --quick          # 60 steps, 200 on Rosenbrock, 1 round (smoke test)

Jobs (the same specs as benchmarks/sweep.py):
  typical  2-32-32-1 tanh MLP, 256 spirals points, full batch, 500 steps, GD / momentum / Adam x 16
           learning rates in [1e-3, 10] x seeds 0 and 1 = 96 runs (the issue's count; sweep.py's
           typical job has seed 0 alone, 48 runs: ``--seeds 1``), in float64 and in float32. Three programs, each
           in its own fresh subprocess, timed from the outside (process start, imports, data,
           compile and the results included):
             descentlab  ``python -m descentlab run typical.toml --out TMP -q`` (default workers;
                         the results folder is written, as the command always does)
             JAX         jit(vmap over the 96 runs of lax.scan over the steps), one program for all
                         three rules (a run's rule is a per-run flag: momentum with μ = 0 is GD exactly,
                         Adam a select); its compile and its compiled part are also timed inside
             PyTorch     eager, one run after another with torch.optim.SGD, SGD(momentum=0.9) and
                         Adam, stopping a run where descentlab stops it (loss non-finite or beyond
                         1e4 x its first loss); torch's default threads
           JAX and PyTorch train from descentlab's own initial weights (the ``initial.*`` arrays of
           its results folder) on the same data (the problem's dataset from the public API, cast
           to the dtype as descentlab casts it), with descentlab's rules and defaults: heavy-ball
           momentum in the PyTorch convention (v = g on the first step, then v = μv + g, θ −= αv,
           μ = 0.9) and Adam with bias correction (β = 0.9, 0.999, ε = 1e-8 added after dividing √v
           by √(1 − β₂ᵗ), PyTorch's formula).
  rosenbrock512  Rosenbrock, 512 stacked runs of one rule (8 α x 64 starting points from descentlab's
           own ``initial.x``, ``initial.y``), 2000 steps, GD, momentum and Adam in turn, float64: µs per
           run-step of descentlab's whole ``run_experiment`` in this process (1 BLAS thread, as in
           sweep.py) against JAX's jit(vmap(scan)) of the same rule in its own subprocess (loss
           curve only; descentlab also records ‖g‖, ‖Δθ‖ and θ every step). JAX runs every step of
           every run; descentlab drops runs as they diverge.

Before timing anything, each framework's loss curves are checked against descentlab's (untimed
first run): the whole curves of a few chosen non-diverging runs (GD and momentum at α = 1e-3,
0.0215, 0.136, Adam at 0.0736 in float64 and 1e-3 in float32, seeds 0 and 1) to a relative 1e-9
in float64 and 1e-5 in float32, the first 4 / 2 losses of every run to 1e-9 / 1e-4 (at α ~ 1-10,
and for Adam, rounding differences are amplified within a few steps: see CHOSEN), and on
Rosenbrock the whole curves of each rule's 4 smallest α (x 64 starts) and the first 10 losses of
every run to 1e-9 (at the larger α, GD at 3.2e-3 and Adam from 9.4e-3, curves drift apart after
step ~400-1400 though the runs converge: measured, from 1e-15 to O(1)). The benchmark stops with a
message if they differ.
Timings are taken in interleaved rounds (descentlab, JAX, PyTorch, in turn, per dtype) so a burst
of load from other processes hits all of them; each figure is the best of the rounds (other
processes only ever add time), the median is printed beside it. The load average is printed
before and after.

Targets (issue #17): the typical job's whole descentlab sweep >= 2x faster than JAX with compile
and >= 10x faster than PyTorch eager, in float64 and float32; Rosenbrock 512 <= 2.5x JAX per
run-step. Without jax or torch that part is skipped with one line saying so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FACTOR = 1e4  # descentlab's default divergence_factor: PyTorch stops a run the same way
KEYS = ("W1", "b1", "W2", "b2", "W3", "b3")  # the 2-32-32-1 network's weights, descentlab's layout names
MU, BETA1, BETA2, EPS = 0.9, 0.9, 0.999, 1e-8  # descentlab's defaults (plugins/rules.py)
TOL_WHOLE = {"float64": 1e-9, "float32": 1e-5}  # whole curves of the chosen runs, relative
# the first FIRST_STEPS losses of every run, relative: at α ~ 1-10 the dynamics are chaotic and
# amplify the rounding differences of another summation order within a few steps (measured against
# JAX, float64: Adam at α = 5.4 from 1e-16 to 1e-2 by loss 10, above 1e-9 from loss 5 on; float32:
# Adam, seed 1, at α = 0.46 already 2e-5 after one step, 1e-4 after two: some of its gradient
# components are near 0, where m/(√v + ε) is sensitive)
TOL_FIRST = {"float64": 1e-9, "float32": 1e-4}
FIRST_STEPS = {"float64": 4, "float32": 2}
# runs whose whole curves are compared (seeds 0 and 1): GD and momentum at α = 1e-3, 0.0215, 0.136 and
# Adam at 0.0736 (float64) or 1e-3 (float32). Measured against JAX, GD up to α = 0.46 and momentum up
# to 0.136 agree to 4e-16 in float64 and 3e-7 in float32 over all 500 steps; most of Adam's curves
# drift from a few 1e-16 to 1e-8..1e-4 after step ~150-490 in float64 (α = 1e-3 to 0.04; at 0.0736
# they stay within 1.4e-12), and in float32 to 1e-3..1e-1 from α = 0.0018 on (at 1e-3 within 1.1e-6):
# Adam divides by √v, which amplifies rounding differences. That says nothing about correctness, so
# those runs are compared on their first FIRST_STEPS losses only.
GD_MOMENTUM = (1e-3, 0.0215, 0.136)
CHOSEN = {
    "float64": {"gd": GD_MOMENTUM, "momentum": GD_MOMENTUM, "adam": (0.0736,)},
    "float32": {"gd": GD_MOMENTUM, "momentum": GD_MOMENTUM, "adam": (1e-3,)},
}
CHOSEN_SEEDS = (0, 1)
ROSEN_RULES = ("gd", "momentum", "adam")  # the rules of sweep.py's rosenbrock512 job (its specs are used)


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.util import find_spec

    if find_spec(name) is None:
        return None
    try:
        from importlib.metadata import version as v

        return v(name)
    except PackageNotFoundError:
        return "?"


# ---- the workers: each runs in its own subprocess (``--worker``), imports only what it needs ------------


def jax_descend(rule: str, loss_fn, dtype):
    """``train(params, lr, mu, adam) -> losses (steps + 1,)`` for one run, to be vmapped: lax.scan over
    the steps of GD / momentum / Adam as descentlab defines them. ``rule`` "mixed" picks momentum or
    Adam per run (``adam`` 0/1; GD is momentum with μ = 0: v = 0·v + g = g exactly)."""
    import jax
    import jax.numpy as jnp

    one = jnp.asarray(1.0, dtype)
    b1, b2, eps = jnp.asarray(BETA1, dtype), jnp.asarray(BETA2, dtype), jnp.asarray(EPS, dtype)
    grad_fn = jax.value_and_grad(loss_fn)

    def train(params, lr, mu, adam, steps):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)

        def step(carry, t):
            ps, v, m, s = carry
            loss, g = grad_fn(ps)
            if rule in ("gd",):
                ps = jax.tree_util.tree_map(lambda p, gi: p + gi * (-lr), ps, g)
                return (ps, v, m, s), loss
            if rule in ("momentum", "mixed"):
                v = jax.tree_util.tree_map(lambda vi, gi: mu * vi + gi, v, g)
                sgd = jax.tree_util.tree_map(lambda vi: vi * (-lr), v)
            if rule in ("adam", "mixed"):
                tt = (t + 1).astype(dtype)
                bias1, bias2 = one - b1**tt, jnp.sqrt(one - b2**tt)
                m = jax.tree_util.tree_map(lambda mi, gi: b1 * mi + (one - b1) * gi, m, g)
                s = jax.tree_util.tree_map(lambda si, gi: b2 * si + (one - b2) * (gi * gi), s, g)
                ad = jax.tree_util.tree_map(lambda mi, si: (mi / (jnp.sqrt(si) / bias2 + eps)) * (-(lr / bias1)), m, s)
            if rule == "momentum":
                upd = sgd
            elif rule == "adam":
                upd = ad
            else:
                upd = jax.tree_util.tree_map(lambda a_, s_: jnp.where(adam, a_, s_), ad, sgd)
            ps = jax.tree_util.tree_map(lambda p, u: p + u, ps, upd)
            return (ps, v, m, s), loss

        (ps, _, _, _), losses = jax.lax.scan(step, (params, zeros, zeros, zeros), jnp.arange(steps))
        return jnp.concatenate([losses, loss_fn(ps)[None]])

    return train


def jax_compile_and_run(train, args, steps, extra_runs=0):
    """Compile ``jit(vmap(train))`` for ``args`` and run it: (losses, compile s, first run s, best further run s)."""
    import jax

    t0 = time.perf_counter()
    f = jax.jit(jax.vmap(lambda *a: train(*a, steps)))
    compiled = f.lower(*args).compile()
    t1 = time.perf_counter()
    losses = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    best = math.inf
    for _ in range(extra_runs):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t)
    return np.asarray(losses), t1 - t0, t2 - t1, best


def worker_jax_typical(data: dict, out: Path) -> dict:
    t_start = time.perf_counter()
    float64 = str(data["dtype"]) == "float64"
    import jax

    if float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    t_import = time.perf_counter()
    dtype = jnp.float64 if float64 else jnp.float32
    x, y = jnp.asarray(data["x"], dtype), jnp.asarray(data["y"], dtype)

    def loss_fn(ps):
        a = x
        for i in range(0, len(ps), 2):  # a_i = tanh(a_{i-1} W_i + b_i), linear output
            z = a @ ps[i] + ps[i + 1]
            a = z if i == len(ps) - 2 else jnp.tanh(z)
        return jnp.mean(jnp.maximum(a, 0) - a * y + jnp.log1p(jnp.exp(-jnp.abs(a))))  # BCE on logits

    params = tuple(jnp.asarray(data[k], dtype) for k in KEYS)
    lr = jnp.asarray(data["lr"], dtype)
    adam = jnp.asarray(data["rule"] == "adam")
    mu = jnp.asarray(np.where(data["rule"] == "gd", 0.0, MU), dtype)
    train = jax_descend("mixed", loss_fn, dtype)
    losses, t_compile, t_run, _ = jax_compile_and_run(train, (params, lr, mu, adam), int(data["steps"]))
    np.save(out, losses)
    return {"import": t_import - t_start, "compile": t_compile, "run": t_run}


def worker_jax_rosenbrock(data: dict, out: Path) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    a, b = 1.0, 100.0

    def loss_fn(p):
        return (a - p[0]) ** 2 + b * (p[1] - p[0] * p[0]) ** 2

    times = {}
    curves = {}
    steps = int(data["steps"])
    for rule in ROSEN_RULES:
        start = jnp.asarray(data["start"], jnp.float64)
        lr = jnp.asarray(data[f"lr_{rule}"], jnp.float64)
        mu = jnp.full(lr.shape, MU, jnp.float64)
        flag = jnp.zeros(lr.shape, bool)
        train = jax_descend(rule, loss_fn, jnp.float64)
        losses, t_compile, t_run, best = jax_compile_and_run(
            train, (start, lr, mu, flag), steps, extra_runs=int(data["repeat"])
        )
        curves[rule] = losses
        times[rule] = {"compile": t_compile, "first": t_run, "best": best}
    np.savez(out, **curves)
    return times


def worker_torch_typical(data: dict, out: Path) -> dict:
    t_start = time.perf_counter()
    import torch
    import torch.nn.functional as F

    t_import = time.perf_counter()
    dtype = torch.float64 if str(data["dtype"]) == "float64" else torch.float32
    np_dtype = np.float64 if dtype is torch.float64 else np.float32
    x = torch.from_numpy(np.ascontiguousarray(data["x"], np_dtype))
    y = torch.from_numpy(np.ascontiguousarray(data["y"], np_dtype))
    steps = int(data["steps"])
    curves = np.full((len(data["lr"]), steps + 1), np.nan)
    for r, (rule, lr) in enumerate(zip(data["rule"], data["lr"])):
        ps = [torch.tensor(np.asarray(data[k][r], np_dtype), requires_grad=True) for k in KEYS]
        if rule == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(ps, lr=float(lr), betas=(BETA1, BETA2), eps=EPS)
        else:
            opt = torch.optim.SGD(ps, lr=float(lr), momentum=MU if rule == "momentum" else 0.0)
        first = None
        for t in range(steps + 1):
            opt.zero_grad()
            a = x
            for i in range(0, len(ps), 2):
                z = a @ ps[i] + ps[i + 1]
                a = z if i == len(ps) - 2 else torch.tanh(z)
            loss = F.binary_cross_entropy_with_logits(a, y)
            value = loss.item()
            curves[r, t] = value
            first = value if first is None else first
            if not math.isfinite(value) or abs(value) > FACTOR * abs(first) or t == steps:
                break
            loss.backward()
            opt.step()
    np.save(out, curves)
    return {"import": t_import - t_start, "threads": torch.get_num_threads()}


WORKERS = {"jax": worker_jax_typical, "torch": worker_torch_typical, "jax-rosenbrock": worker_jax_rosenbrock}


def worker_main(kind: str, data_path: str, out_path: str) -> int:
    with np.load(data_path) as npz:
        data = {k: npz[k] for k in npz.files}
    info = WORKERS[kind](data, Path(out_path))
    print("RESULT " + json.dumps(info), flush=True)
    return 0


# ---- the parent: data, checks, timed rounds ----------------------------------------------------------


def run_child(args: list[str]) -> tuple[float, dict]:
    """Wall seconds of a fresh subprocess and the info it printed (``RESULT {json}``)."""
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(args[:4])} ... failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    info = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            info = json.loads(line[len("RESULT ") :])
    return seconds, info


def descentlab_curves(folder: Path):
    """Loss curves ``{run_id: array}``, the runs table and the weights of a results folder (public API)."""
    from descentlab.records import load_results

    res = load_results(folder)
    curves = {int(k): g["loss"].to_numpy() for k, g in res.metrics.groupby("run_id")}
    return curves, res.runs, res.weights


def relative_gap(got: np.ndarray, expected: np.ndarray) -> float:
    return float((np.abs(got - expected) / np.maximum(np.abs(expected), 1e-300)).max(initial=0.0))


def check_typical(label: str, dtype: str, dl_curves: dict, runs, other: np.ndarray, chosen: list[int]) -> str:
    """Abort unless ``other`` (runs x steps+1, NaN past a stopped run) equals descentlab's curves: whole
    curves of ``chosen``, the first FIRST_STEPS losses of every run."""
    whole = 0.0
    for run_id in chosen:
        expected = dl_curves[run_id]
        got = other[run_id, : len(expected)]
        if runs.loc[run_id, "status"] == "diverged" or not np.all(np.isfinite(got)):
            sys.exit(f"{label} {dtype}: chosen run {run_id} diverged; choose other runs")
        whole = max(whole, relative_gap(got, expected))
    first = 0.0
    for run_id, expected in dl_curves.items():
        n = min(FIRST_STEPS[dtype], len(expected))
        e, g = expected[:n], other[run_id, :n]
        finite = np.isfinite(e)
        if not np.array_equal(finite, np.isfinite(g)):
            sys.exit(f"{label} {dtype}: run {run_id}: non-finite losses differ in the first {n} steps")
        first = max(first, relative_gap(g[finite], e[finite]))
    if whole > TOL_WHOLE[dtype] or first > TOL_FIRST[dtype]:
        sys.exit(
            f"{label} {dtype}: loss curves differ from descentlab's: max relative gap {whole:.2g} over the whole "
            f"curves of runs {chosen} (tolerance {TOL_WHOLE[dtype]:g}), {first:.2g} over the first "
            f"{FIRST_STEPS[dtype]} steps of every run (tolerance {TOL_FIRST[dtype]:g})"
        )
    return (
        f"{whole:.1e} over the whole curves of {len(chosen)} chosen runs, "
        f"{first:.1e} over the first {FIRST_STEPS[dtype]} losses of all {len(dl_curves)}"
    )


def stats(values: list[float]) -> str:
    return f"best {min(values):6.2f} s, median {statistics.median(values):6.2f} s (of {len(values)})"


def typical(tmp: Path, steps: int, n_lr: int, seeds: int, rounds: int, torch_rounds: int, have: dict) -> dict:
    import sweep  # benchmarks/sweep.py: the same job spec
    import tomli_w

    from descentlab.experiment import Experiment
    from descentlab.registry import load_registry

    registry = load_registry(entry_points=False, use_env=False)
    summary = {}
    setups = {}
    for dtype in ("float64", "float32"):
        spec = sweep.typical_spec(steps, n_lr, seeds=seeds, dtype=dtype, name=f"bench-frameworks-{dtype}")
        experiment = Experiment.from_dict(spec, registry)
        toml = tmp / f"typical-{dtype}.toml"
        toml.write_text(tomli_w.dumps(spec))
        out = tmp / f"results-{dtype}"
        dl_cmd = [sys.executable, "-m", "descentlab", "run", str(toml), "--out", str(out), "-q"]
        run_child(dl_cmd)  # untimed first run: its results are the reference and the initial weights
        (folder,) = sorted(out.iterdir())
        dl_curves, runs, weights = descentlab_curves(folder)
        instance = registry.problem("spirals").build(experiment.problem_settings)
        rule = runs["rule"].to_numpy().astype(str)
        lr = runs["learning_rate"].to_numpy(np.float64)
        data = {
            "x": instance.dataset.x_train,
            "y": instance.dataset.y_train.reshape(len(instance.dataset.x_train), -1),
            "rule": rule,
            "lr": lr,
            "steps": np.asarray(steps),
            "dtype": np.asarray(dtype),
            **{k: weights[f"initial.{k}"] for k in KEYS},
        }
        if not np.array_equal(runs["run_id"].to_numpy(), np.arange(len(runs))):
            sys.exit("descentlab's runs table is not in run_id order")
        data_path = tmp / f"typical-{dtype}.npz"
        np.savez(data_path, **data)
        chosen = [
            i
            for i in range(len(runs))
            if np.isclose(lr[i], CHOSEN[dtype][rule[i]], rtol=1e-2).any() and runs.loc[i, "seed"] in CHOSEN_SEEDS
        ]
        if {rule[i] for i in chosen} != set(CHOSEN[dtype]):
            sys.exit(f"no run of some rule has an α of {CHOSEN[dtype]} to check whole curves on")
        programs = {"descentlab": dl_cmd}
        for fw in ("jax", "torch"):
            if have[fw]:
                programs[fw] = [
                    sys.executable,
                    __file__,
                    "--worker",
                    fw,
                    str(data_path),
                    str(tmp / f"{fw}-{dtype}.npy"),
                ]
        print(
            f"typical job, {dtype}: {instance.model}, {len(data['x'])} points, full batch, {steps} steps, "
            f"{len(runs)} runs (gd, momentum, adam x {n_lr} α in [1e-3, 10] x {seeds} seeds); "
            f"{int((runs['status'] == 'diverged').sum())} diverge in descentlab",
            flush=True,
        )
        for fw in ("jax", "torch"):  # equality first, untimed
            if fw in programs:
                run_child(programs[fw])
                other = np.load(tmp / f"{fw}-{dtype}.npy")
                text = check_typical(fw, dtype, dl_curves, runs, other, chosen)
                print(f"  {fw} loss curves agree with descentlab's: max relative gap {text}", flush=True)
        setups[dtype] = programs
        summary[dtype] = {fw: [] for fw in programs} | {"jax compile": [], "jax run": []}
    for r in range(rounds):
        for dtype, programs in setups.items():
            for fw, cmd in programs.items():
                if fw == "torch" and r >= torch_rounds:
                    continue
                seconds, info = run_child(cmd)
                summary[dtype][fw].append(seconds)
                if fw == "jax":
                    summary[dtype]["jax compile"].append(info["compile"])
                    summary[dtype]["jax run"].append(info["run"])
                print(f"    round {r + 1}: {dtype} {fw:<10} {seconds:7.2f} s", flush=True)
    for dtype, s in summary.items():
        print(f"  {dtype}, whole subprocess wall time (process start, imports and compile included):")
        for fw in setups[dtype]:
            print(f"    {fw:<12} {stats(s[fw])}")
        if s["jax run"]:
            print(f"    {'jax compile':<12} {stats(s['jax compile'])}   (trace + XLA compile, inside its process)")
            print(f"    {'jax compiled':<12} {stats(s['jax run'])}   (the compiled part alone)")
    return summary


def rosenbrock512(tmp: Path, steps: int, rounds: int, repeat: int, have: dict) -> dict:
    import sweep  # benchmarks/sweep.py: the same job spec
    from threadpoolctl import threadpool_limits

    from descentlab.experiment import Experiment
    from descentlab.registry import load_registry
    from descentlab.runner import run_experiment

    registry = load_registry(entry_points=False, use_env=False)

    experiments = {rule: Experiment.from_dict(sweep.rosenbrock512_spec(rule, steps), registry) for rule in ROSEN_RULES}
    n_run_steps = 512 * steps
    print(
        f"rosenbrock512 job: Rosenbrock, 512 runs of one rule (8 α x 64 starting points), {steps} steps, float64; "
        f"descentlab in this process (1 BLAS thread), JAX in its own subprocess",
        flush=True,
    )
    limit = threadpool_limits(1, user_api="blas")
    reference = {rule: run_experiment(e, registry=registry, workers=1) for rule, e in experiments.items()}
    data = {"steps": np.asarray(steps), "repeat": np.asarray(repeat)}
    starts = None
    for rule, res in reference.items():
        if not np.array_equal(res.runs["run_id"].to_numpy(), np.arange(len(res.runs))):
            sys.exit("descentlab's runs table is not in run_id order")
        point = np.column_stack([res.weights["initial.x"], res.weights["initial.y"]])
        if starts is not None and not np.array_equal(point, starts):
            sys.exit("rosenbrock512: the rules' starting points differ")
        starts = point
        data[f"lr_{rule}"] = res.runs["learning_rate"].to_numpy(np.float64)
    data["start"] = starts
    data_path = tmp / "rosenbrock.npz"
    np.savez(data_path, **data)
    jax_cmd = [sys.executable, __file__, "--worker", "jax-rosenbrock", str(data_path), str(tmp / "jax-rosen.npz")]
    if have["jax"]:  # equality first, untimed
        run_child(jax_cmd)
        with np.load(tmp / "jax-rosen.npz") as npz:
            whole, first, n = 0.0, 0.0, 0
            for rule, res in reference.items():
                curves = npz[rule]
                slow = np.sort(np.unique(res.runs["learning_rate"].to_numpy()))[:4]
                for run_id, group in res.metrics.groupby("run_id"):
                    expected = group["loss"].to_numpy()
                    got = curves[run_id, : len(expected)]
                    first = max(first, relative_gap(got[:10], expected[:10]))
                    if res.runs.loc[run_id, "learning_rate"] in slow:
                        whole = max(whole, relative_gap(got, expected))
                        n += 1
        if whole > TOL_WHOLE["float64"] or first > TOL_WHOLE["float64"]:
            sys.exit(
                f"rosenbrock512: JAX's loss curves differ from descentlab's (max relative gap {whole:.2g} over "
                f"the whole curves at the 4 smallest α, {first:.2g} over the first 10 losses of every run)"
            )
        print(
            f"  jax loss curves agree with descentlab's: max relative gap {whole:.1e} over the whole curves of "
            f"the {n} runs at each rule's 4 smallest α, {first:.1e} over the first 10 losses of all {3 * 512}"
        )
    else:
        print("  jax not importable: JAX's half skipped")
    dl: dict[str, list[float]] = {rule: [] for rule in ROSEN_RULES}
    jx: dict[str, dict[str, list[float]]] = {rule: {"compile": [], "first": [], "best": []} for rule in ROSEN_RULES}
    wall: list[float] = []
    for r in range(rounds):
        for rule, e in experiments.items():
            t = time.perf_counter()
            run_experiment(e, registry=registry, workers=1)
            dl[rule].append(time.perf_counter() - t)
        if have["jax"]:
            seconds, info = run_child(jax_cmd)
            wall.append(seconds)
            for rule in ROSEN_RULES:
                for k in ("compile", "first", "best"):
                    jx[rule][k].append(info[rule][k])
        print(
            f"    round {r + 1}: descentlab "
            + ", ".join(f"{rule} {v[-1]:.3f} s" for rule, v in dl.items())
            + (f"; jax process {wall[-1]:.2f} s" if wall else ""),
            flush=True,
        )
    del limit
    us = lambda seconds: seconds / n_run_steps * 1e6
    out = {}
    print(f"  µs per run-step, best of {rounds} rounds (JAX compiled: best of {rounds} x {repeat} calls):")
    print(f"    {'rule':<10} {'descentlab':>10} {'jax compiled':>13} {'jax + compile':>14} {'ratio':>7} {'ratio+c':>8}")
    for rule in ROSEN_RULES:
        d = us(min(dl[rule]))
        row = {"descentlab": d}
        text = f"    {rule:<10} {d:10.4f}"
        if have["jax"]:
            compiled = us(min(jx[rule]["best"]))
            with_compile = us(min(c + f for c, f in zip(jx[rule]["compile"], jx[rule]["first"])))
            row |= {"jax": compiled, "jax_compile": with_compile}
            text += f" {compiled:13.4f} {with_compile:14.4f} {d / compiled:6.2f}x {d / with_compile:7.2f}x"
        out[rule] = row
        print(text)
    if wall:
        print(f"    (the JAX subprocess, 3 rules x (compile + 1 + {repeat} calls): {stats(wall)})")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=("typical", "rosenbrock512", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (best and median printed)")
    parser.add_argument("--torch-rounds", type=int, default=None, help="rounds PyTorch joins (default: all)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the typical job (2: 96 runs, the issue's)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, one round (smoke test)")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(*args.worker)
    have = {name: version(name) for name in ("jax", "torch")}
    import descentlab  # noqa: F401  (the project must be importable before anything is timed)

    print(
        f"numpy {np.__version__}, jax {have['jax'] or 'not importable'}, torch {have['torch'] or 'not importable'}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {load()}",
        flush=True,
    )
    for name in ("jax", "torch"):
        if not have[name]:
            print(f"  {name} is not importable: its part is skipped")
    rounds = 1 if args.quick else args.rounds
    torch_rounds = rounds if args.torch_rounds is None else args.torch_rounds
    summary: dict = {}
    with tempfile.TemporaryDirectory(prefix="descentlab-frameworks-") as tmp:
        if args.job in ("typical", "all"):
            summary["typical"] = typical(
                Path(tmp), 60 if args.quick else 500, 16, args.seeds, rounds, torch_rounds, have
            )
        if args.job in ("rosenbrock512", "all"):
            summary["rosenbrock512"] = rosenbrock512(
                Path(tmp), 200 if args.quick else 2000, rounds, 2 if args.quick else 5, have
            )
    print(f"after the jobs: {load()}")
    print("targets (issue #17), from the best of the rounds:")
    for dtype, s in summary.get("typical", {}).items():
        d = min(s["descentlab"])
        if s.get("jax"):
            j = min(s["jax"])
            verdict = "met" if j / d >= 2 else "NOT met"
            print(
                f"  typical {dtype}: JAX with compile / descentlab = {j:.2f} / {d:.2f} s = {j / d:.2f}x "
                f"(>= 2x: {verdict})"
            )
            jr = min(s["jax run"])
            print(f"  typical {dtype}: (JAX's compiled part alone / descentlab = {jr / d:.2f}x, not a target)")
        if s.get("torch"):
            t = min(s["torch"])
            verdict = "met" if t / d >= 10 else "NOT met"
            print(
                f"  typical {dtype}: PyTorch eager / descentlab = {t:.2f} / {d:.2f} s = {t / d:.2f}x "
                f"(>= 10x: {verdict})"
            )
    for rule, row in summary.get("rosenbrock512", {}).items():
        if "jax" in row:
            ratio = row["descentlab"] / row["jax"]
            verdict = "met" if ratio <= 2.5 else "NOT met"
            print(
                f"  rosenbrock512 {rule}: descentlab / JAX compiled = {row['descentlab']:.4f} / {row['jax']:.4f} "
                f"µs = {ratio:.2f}x (<= 2.5x: {verdict}); against JAX with compile "
                f"{row['descentlab'] / row['jax_compile']:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
