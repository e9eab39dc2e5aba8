"""The cases of the runner's snapshot test, and how one case's results become digests.

Shared by ``test_snapshots.py`` (which checks the digests against ``snapshots.json``) and
``make_snapshots.py`` (which writes that file): a case is defined here and nowhere else.

A case is an experiment dict (the TOML format, as ``Experiment.from_dict`` takes it) plus how it
is run (``run_experiment(e, workers=1)``, or through an in-process executor for the executor
path). Its digests are SHA-256 hex digests of exact bytes:

* ``metrics.<column>``: every column of the long metrics table except ``grad_norm.<layer>``
  (those are NaN for small networks, a known bug being fixed), ``run_id`` and ``step`` included,
  each as ``to_numpy(dtype="<f8")`` bytes in the table's row order;
* ``runs.<column>``: the runs-table columns in ``RUNS_COLUMNS``, the same way (``status`` and
  ``divergence_reason`` are left out on purpose: their vocabulary is changing);
* ``weights.<key>``: every array of ``results.weights``, its dtype and shape hashed before its
  bytes (so a change of dtype or shape is a change too).

Every NaN is replaced by one canonical quiet NaN before hashing (NaN payloads and signs are not
results); everything else, -0.0 included, is compared bit for bit.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from simd_family import simd_family  # noqa: F401 (make_snapshots and the test pick their file by it)

RUNS_COLUMNS = ("run_id", "seed", "learning_rate", "final_loss", "best_loss", "diverged_at", "steps_to_target")
DTYPES = ("float64", "float32")
STEPS = 40
SEEDS = [0, 1]

# ---- descent rules: every built-in, with its non-default flags on at least one variant ----------

# variant name -> (rule, hyperparameters); a list is a grid axis (several values in one entry: a
# per-run hyperparameter array, and for a bool a chunk with the flag on for some runs, off for others)
VARIANTS: dict[str, tuple[str, dict]] = {
    "gd": ("gd", {}),
    "gd_wd": ("gd", {"weight_decay": 0.01}),
    "momentum": ("momentum", {}),
    "momentum_nesterov": ("momentum", {"nesterov": True}),
    "momentum_dampening_wd": ("momentum", {"momentum": 0.5, "dampening": 0.5, "weight_decay": 0.01}),
    "momentum_mixed": ("momentum", {"nesterov": [False, True], "momentum": [0.5, 0.9]}),
    "nesterov": ("nesterov", {}),
    "nesterov_wd": ("nesterov", {"momentum": 0.5, "weight_decay": 0.01}),
    "classical_momentum": ("classical_momentum", {}),
    "classical_momentum_grid": ("classical_momentum", {"momentum": [0.0, 0.5]}),
    "adagrad": ("adagrad", {}),
    "adagrad_options": (
        "adagrad",
        {"lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-6, "weight_decay": 0.01},
    ),
    "rmsprop": ("rmsprop", {}),
    "rmsprop_centered": ("rmsprop", {"centered": True}),
    "rmsprop_momentum": ("rmsprop", {"momentum": 0.9}),
    "rmsprop_centered_momentum_wd": (
        "rmsprop",
        {"centered": True, "momentum": 0.5, "alpha": 0.9, "weight_decay": 0.01},
    ),
    "rmsprop_mixed": ("rmsprop", {"centered": [False, True]}),
    "adam": ("adam", {}),
    "adam_amsgrad": ("adam", {"amsgrad": True}),
    "adam_wd_betas": ("adam", {"weight_decay": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6}),
    "adam_mixed": ("adam", {"amsgrad": [False, True]}),
    "adamw": ("adamw", {}),
    "adamw_amsgrad": ("adamw", {"amsgrad": True, "weight_decay": 0.1}),
}
DEFAULT_VARIANTS = ("gd", "momentum", "nesterov", "classical_momentum", "adagrad", "rmsprop", "adam", "adamw")
FLAG_VARIANTS = tuple(v for v in VARIANTS if v not in DEFAULT_VARIANTS)
ADAPTIVE = ("adagrad", "rmsprop", "adam", "adamw")

# ---- problem kinds --------------------------------------------------------------------------------
# kind -> (settings without rules, learning rates of the plain rules, of the adaptive ones)
KINDS: dict[str, tuple[dict, list[float], list[float]]] = {
    # landscape, quadratic bowl λ_max = 1: the larger α of each pair diverges (GD α < 2, heavy ball
    # α < 3.8, Nesterov α < 1.36; an adaptive step of ~α jumps far outside at once)
    "quadratic": (
        {
            "divergence_factor": 100.0,
            "eval_every": 0,
            "target_loss": 0.01,
            "problem": {"name": "quadratic", "condition": 10.0, "angle": 30.0, "start_spread": 0.1},
        },
        [0.5, 4.5],
        [0.1, 100.0],
    ),
    # landscape, Rosenbrock valley: stable rates
    "rosenbrock": (
        {"eval_every": 0, "target_loss": 1.0, "problem": {"name": "rosenbrock", "start_spread": 0.1}},
        [1e-4, 1e-3],
        [1e-2, 1e-1],
    ),
    # linear regression y = w x + b (two parameters: the landscape path bookkeeping, with data)
    "linreg": (
        {
            "eval_every": 10,
            "target_loss": 0.05,
            "problem": {"name": "linear_regression", "samples": 64, "noise": 0.1, "start_spread": 0.5},
        },
        [0.1, 0.5],
        [0.05, 0.3],
    ),
    # MLP 2-4-1 on XOR: 17 parameters <= SMALL_PARAMS, the "small" bookkeeping path
    "xor": (
        {"eval_every": 10, "target_loss": 0.6, "problem": {"name": "xor", "samples": 64, "hidden": [4]}},
        [0.3, 1.0],
        [0.01, 0.1],
    ),
    # MLP 2-16-1 on two moons: 65 parameters, the general path (per-layer norms in the loop)
    "moons": (
        {"eval_every": 10, "target_loss": 0.5, "problem": {"name": "moons", "samples": 128, "hidden": [16]}},
        [0.3, 1.0],
        [0.01, 0.1],
    ),
    # mini-batches, small path: 51 training points, batches of 16, a new permutation every 3 steps
    "xor_minibatch": (
        {"eval_every": 10, "batch_size": 16, "problem": {"name": "xor", "samples": 64, "hidden": [4]}},
        [0.3, 1.0],
        [0.01, 0.1],
    ),
    # mini-batches, general path
    "moons_minibatch": (
        {"eval_every": 10, "batch_size": 16, "problem": {"name": "moons", "samples": 128, "hidden": [16]}},
        [0.3, 1.0],
        [0.01, 0.1],
    ),
    # a schedule with warmup on every rule (cosine, 8 warmup steps)
    "moons_schedule": (
        {"eval_every": 10, "problem": {"name": "moons", "samples": 128, "hidden": [16]}},
        [0.3, 1.0],
        [0.01, 0.1],
    ),
}
SCHEDULED_KINDS = {"moons_schedule": {"name": "cosine", "warmup_steps": 8, "min_lr_fraction": 0.1}}
# the flag variants run on these kinds (the default variants on every kind)
FLAG_KINDS = ("quadratic", "xor", "moons", "moons_minibatch")


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict
    executor: bool = False  # run through an in-process executor (run_chunk_job) instead of workers=1


def _entry(variant: str, rates: tuple[list[float], list[float]], **extra) -> dict:
    rule, hyper = VARIANTS[variant]
    plain, adaptive = rates
    return {"rule": rule, "learning_rate": list(adaptive if rule in ADAPTIVE else plain), **hyper, **extra}


def _spec(kind: str, dtype: str, entries: list[dict], **overrides) -> dict:
    settings, _, _ = KINDS[kind]
    spec = {"steps": STEPS, "seeds": list(SEEDS), "dtype": dtype}
    spec.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in settings.items()})
    spec.update(overrides)
    spec["rules"] = entries
    return spec


def _single_rule_cases() -> list[Case]:
    cases = []
    for kind, (_, plain, adaptive) in KINDS.items():
        variants = DEFAULT_VARIANTS + (FLAG_VARIANTS if kind in FLAG_KINDS else ())
        for variant in variants:
            for dtype in DTYPES:
                extra = {"schedule": dict(SCHEDULED_KINDS[kind])} if kind in SCHEDULED_KINDS else {}
                entry = _entry(variant, (plain, adaptive), **extra)
                cases.append(Case(f"{kind}-{variant}-{dtype}", _spec(kind, dtype, [entry])))
    return cases


def _multi_rule_entries(kind: str) -> list[dict]:
    """Every default rule plus flag variants as entries of one experiment: one chunk, several groups."""
    _, plain, adaptive = KINDS[kind]
    rates = (plain, adaptive)
    schedules = {
        "momentum": {"name": "step", "step_size": 10, "gamma": 0.5, "warmup_steps": 5},
        "adam": {"name": "cosine", "warmup_steps": 8},
        "rmsprop": {"name": "exponential", "gamma": 0.95},
    }
    entries = []
    for variant in DEFAULT_VARIANTS + ("momentum_mixed", "rmsprop_centered_momentum_wd", "adam_amsgrad"):
        extra = {"label": variant}
        if variant in schedules:
            extra["schedule"] = dict(schedules[variant])
        entries.append(_entry(variant, rates, **extra))
    return entries


def _multi_rule_cases() -> list[Case]:
    cases = []
    for kind in ("quadratic", "linreg", "xor", "moons", "moons_minibatch"):
        for dtype in DTYPES:
            cases.append(Case(f"multi-{kind}-{dtype}", _spec(kind, dtype, _multi_rule_entries(kind))))
    return cases


def _special_cases() -> list[Case]:
    cases = []
    for dtype in DTYPES:
        # the top Hessian eigenvalue every 10 steps (landscape, small and general MLP)
        for kind in ("quadratic", "xor", "moons"):
            entries = [
                _entry("gd", (KINDS[kind][1], KINDS[kind][2]), label="gd"),
                _entry("adam", (KINDS[kind][1], KINDS[kind][2]), label="adam"),
            ]
            cases.append(Case(f"sharpness-{kind}-{dtype}", _spec(kind, dtype, entries, sharpness_every=10)))
        # a larger network: several chunks per experiment (4417 parameters: 14 runs make 3 float64
        # chunks, 2 float32 chunks)
        big = {"eval_every": 10, "steps": 20, "problem": {"name": "moons", "samples": 128, "hidden": [64, 64]}}
        entries = [
            {"rule": "gd", "learning_rate": [0.03, 0.1, 0.3]},
            {"rule": "adam", "learning_rate": [0.003, 0.01], "amsgrad": [False, True]},
        ]
        spec = {"seeds": list(SEEDS), "dtype": dtype, **big, "rules": entries}
        cases.append(Case(f"chunks-moons64x64-{dtype}", spec))
        # the same through an executor: chunks rebuilt from the experiment's dict (run_chunk_job)
        cases.append(Case(f"executor-moons64x64-{dtype}", spec, executor=True))
        # the executor path on a multi-rule landscape with divergences
        cases.append(
            Case(
                f"executor-multi-quadratic-{dtype}",
                _spec("quadratic", dtype, _multi_rule_entries("quadratic")),
                executor=True,
            )
        )
        # divergences inside networks: runs dropped from the stack at different steps, on the small
        # and the general path, full-batch and mini-batch (a low divergence factor and large rates)
        for kind in ("xor", "moons", "xor_minibatch", "moons_minibatch"):
            entries = [
                _entry(variant, ([0.5, 30.0], [0.01, 3.0]), label=variant)
                for variant in ("gd", "momentum_mixed", "nesterov", "adam", "rmsprop_centered")
            ]
            cases.append(Case(f"diverge-{kind}-{dtype}", _spec(kind, dtype, entries, divergence_factor=1.5)))
            cases.append(
                Case(
                    f"diverge-{kind}-gd-{dtype}",
                    _spec(kind, dtype, [_entry("gd", ([0.5, 30.0], [0.01, 3.0]))], divergence_factor=1.5),
                )
            )
        # eval_every = 0 on a network: test loss and accuracy at the last step only
        cases.append(
            Case(
                f"eval-last-only-moons-{dtype}",
                _spec("moons", dtype, [_entry("momentum", (KINDS["moons"][1], KINDS["moons"][2]))], eval_every=0),
            )
        )
    return cases


CASES: list[Case] = _single_rule_cases() + _multi_rule_cases() + _special_cases()
CASES_BY_NAME = {c.name: c for c in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"


# ---- running and digesting ---------------------------------------------------------------------------


def snapshot_registry():
    """Built-ins only: no entry points, no DESCENTLAB_PLUGINS files (installed plugins cannot change results)."""
    from descentlab.registry import load_registry

    return load_registry(entry_points=False, use_env=False)


def run_case(case: Case, registry):
    from descentlab.experiment import Experiment
    from descentlab.runner import run_experiment

    experiment = Experiment.from_dict(case.spec, registry, name=case.name)
    if case.executor:
        with ThreadPoolExecutor(max_workers=1) as executor:
            return run_experiment(experiment, registry=registry, executor=executor)
    return run_experiment(experiment, registry=registry, workers=1)


def _canonical(values: np.ndarray) -> np.ndarray:
    values = np.ascontiguousarray(values)
    if values.dtype.kind in "fc":
        nan = np.isnan(values)
        if nan.any():
            values = values.copy()
            values[nan] = np.nan  # one bit pattern for every NaN
    return values


def digest_column(values) -> str:
    """SHA-256 of a table column as little-endian float64 bytes, NaN canonical."""
    array = _canonical(np.asarray(values.to_numpy(dtype="<f8") if hasattr(values, "to_numpy") else values, dtype="<f8"))
    return hashlib.sha256(array.tobytes()).hexdigest()


def digest_array(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order, little-endian), NaN canonical."""
    array = _canonical(np.asarray(array))
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    header = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def is_layer_norm(column: str) -> bool:
    return column.startswith("grad_norm.")


def digests(results) -> dict[str, str]:
    out = {}
    for column in results.metrics.columns:
        if not is_layer_norm(column):
            out[f"metrics.{column}"] = digest_column(results.metrics[column])
    for column in RUNS_COLUMNS:
        out[f"runs.{column}"] = digest_column(results.runs[column])
    for key in sorted(results.weights):
        out[f"weights.{key}"] = digest_array(results.weights[key])
    return out


# ---- which golden file: numpy's SIMD loops (tests/simd_family.py) ------------------------------

GOLDEN_FILES = {"avx512": "snapshots.json", "avx2": "snapshots-avx2.json"}
