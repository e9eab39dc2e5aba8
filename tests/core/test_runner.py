"""The batched runner against hand-written reference loops: metrics, divergence, failures, seeds, executors."""

import math
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import descentlab.runner as runner
import test_runner_plugin
from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment
from test_runner_plugin import RunnerTestPlugin

PLUGIN_FILE = str(Path(test_runner_plugin.__file__).resolve())


@pytest.fixture(scope="module")
def registry():
    return load_registry(entry_points=False, use_env=False, extra_plugins=[("test", RunnerTestPlugin)])


def experiment(registry, rules, **settings):
    d = {"steps": 20, "seeds": 1, "eval_every": 0, "problem": {"name": "test_quadratic"}, "rules": rules}
    d.update(settings)
    return Experiment.from_dict(d, registry)


def kinds(statuses):
    """Statuses with the two stable verdicts (converged, progressing) as "ok": the runner tests check
    the bookkeeping; which stable verdict a run gets is tested in test_verdicts.py."""
    return ["ok" if s in ("converged", "progressing") else s for s in statuses]


def reference_gd(alpha, scale, steps, lam=(1.0, 0.25), start=(1.0, -2.0)):
    """Plain numpy GD on J = ½(λ₁x² + λ₂y²), one run, written out: θ ← θ − α s λ⊙θ."""
    lam, theta = np.array(lam), np.array(start, dtype=float)
    losses, norms, steps_taken, path = [], [], [], [theta.copy()]
    for t in range(steps + 1):
        g = lam * theta
        losses.append(0.5 * (theta * g).sum())
        norms.append(math.hypot(*g))
        if t == steps:
            break
        update = -(alpha * scale) * g
        steps_taken.append(math.hypot(*update))
        theta = theta + update
        path.append(theta.copy())
    return np.array(losses), np.array(norms), np.array(steps_taken), np.array(path)


def test_metrics_equal_a_plain_numpy_loop(registry):
    e = experiment(registry, [{"rule": "test_gd", "learning_rate": [0.1, 0.5], "scale": [1.0, 3.0]}], steps=25)
    res = run_experiment(e, registry=registry, workers=1)
    assert kinds(res.runs["status"]) == ["ok"] * 4
    for run in e.runs():
        m = res.run_metrics(run.run_id)
        loss, norms, sizes, path = reference_gd(run.learning_rate, run.hyper["scale"], e.steps)
        assert list(m["step"]) == list(range(e.steps + 1))
        np.testing.assert_array_equal(m["loss"], loss)
        np.testing.assert_array_equal(res.weights["path"][run.run_id], path)
        np.testing.assert_allclose(m["grad_norm"], norms, rtol=1e-15)
        np.testing.assert_allclose(m["grad_norm.point"], norms, rtol=1e-15)
        np.testing.assert_allclose(m["step_size"][:-1], sizes, rtol=1e-15)
        assert m["learning_rate"][:-1].eq(run.learning_rate).all()
        assert np.isnan(m["learning_rate"].iloc[-1]) and np.isnan(m["step_size"].iloc[-1])
        np.testing.assert_array_equal(res.weights["final.point"][run.run_id], path[-1])
        np.testing.assert_array_equal(res.weights["initial.point"][run.run_id], [1.0, -2.0])
        row = res.runs.iloc[run.run_id]
        assert row["final_loss"] == loss[-1] and row["best_loss"] == loss.min()
    assert m[["test_loss", "test_accuracy", "sharpness"]].isna().all().all()


def test_runs_table_columns(registry):
    e = experiment(
        registry,
        [
            {"rule": "test_gd", "learning_rate": 0.1},
            {"rule": "momentum", "learning_rate": 0.1, "schedule": {"name": "step", "step_size": 5}},
        ],
    )
    runs = run_experiment(e, registry=registry, workers=1).runs
    assert list(runs.columns) == [
        "run_id",
        "entry",
        "label",
        "rule",
        "schedule",
        "seed",
        "learning_rate",
        "scale",
        "momentum",
        "dampening",
        "nesterov",
        "weight_decay",
        "schedule.step_size",
        "schedule.gamma",
        "warmup_steps",
        "transforms",
        "status",
        "diverged_at",
        "unstable_at",
        "final_loss",
        "best_loss",
        "train_loss_start",
        "train_loss_final",
        "steps_to_target",
        "error",
        "divergence_reason",
        "lambda_max_start",
        "lambda_max_flagged",
    ]
    assert runs["scale"].tolist()[0] == 1.0 and np.isnan(runs["scale"][1])
    assert np.isnan(runs["momentum"][0]) and runs["momentum"][1] == 0.9 and runs["nesterov"][1] == 0.0


def test_schedule_and_warmup_give_the_recorded_learning_rate(registry):
    e = experiment(
        registry,
        [
            {
                "rule": "test_gd",
                "learning_rate": 0.2,
                "schedule": {"name": "step", "step_size": 4, "gamma": 0.5, "warmup_steps": 3},
            }
        ],
        steps=12,
    )
    lr = run_experiment(e, registry=registry, workers=1).metrics["learning_rate"].to_numpy()
    expected = [0.2 * (t + 1) / 3 for t in range(3)] + [0.2 * 0.5 ** ((t - 3) // 4) for t in range(3, 12)]
    np.testing.assert_allclose(lr[:12], expected, rtol=1e-15)


def first_divergence(alpha, factor=1e4, lam=(1.0, 0.25), start=(1.0, -2.0)):
    """Closed form: L_t = ½ Σ λ_i (1 − αλ_i)^(2t) θ_i²; first t with L_t > factor · L_0."""
    l0 = 0.5 * sum(l * s * s for l, s in zip(lam, start))
    for t in range(1000):
        if 0.5 * sum(l * (1 - alpha * l) ** (2 * t) * s * s for l, s in zip(lam, start)) > factor * l0:
            return t
    return None


def test_dropping_a_diverged_run_keeps_the_others_rows_in_place(registry):
    e = experiment(registry, [{"rule": "test_gd", "learning_rate": [2.5, 0.5, 1e200, 0.1]}], steps=30)
    res = run_experiment(e, registry=registry, workers=1)
    assert kinds(res.runs["status"]) == ["diverged", "ok", "diverged", "ok"]
    for run_id, alpha in ((1, 0.5), (3, 0.1)):
        loss, norms, sizes, path = reference_gd(alpha, 1.0, 30)
        m = res.run_metrics(run_id)
        np.testing.assert_array_equal(m["loss"], loss)
        np.testing.assert_allclose(m["step_size"][:-1], sizes, rtol=1e-15)
        np.testing.assert_allclose(m["grad_norm"], norms, rtol=1e-15)
        np.testing.assert_array_equal(res.weights["path"][run_id], path)


def test_divergence_is_detected_frozen_and_others_continue(registry):
    e = experiment(registry, [{"rule": "test_gd", "learning_rate": [0.5, 2.5, 1e200]}], steps=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning may reach the user
        res = run_experiment(e, registry=registry, workers=1)
    runs = res.runs
    t_div = first_divergence(2.5)
    assert t_div == 13
    assert kinds(runs["status"]) == ["ok", "diverged", "diverged"]
    assert runs["diverged_at"][1] == t_div and runs["diverged_at"][2] == 1
    assert np.isnan(runs["diverged_at"][0])
    counts = res.metrics.groupby("run_id")["step"].max()
    assert list(counts) == [40, t_div, 1]
    assert np.isinf(runs["final_loss"][2])
    # the diverged run's rows match the reference up to its divergence step, its path is NaN afterwards
    loss, *_, path = reference_gd(2.5, 1.0, t_div)
    np.testing.assert_array_equal(res.run_metrics(1)["loss"], loss)
    np.testing.assert_array_equal(res.weights["final.point"][1], path[-1])
    assert np.isnan(res.weights["path"][1][t_div + 1 :]).all()
    # the other run is exactly what it is alone
    alone = run_experiment(
        experiment(registry, [{"rule": "test_gd", "learning_rate": 0.5}], steps=40), registry=registry, workers=1
    )
    pd.testing.assert_frame_equal(res.run_metrics(0), alone.run_metrics(0), check_exact=True)
    assert "2" in runs["divergence_reason"][1]  # gd's limit α·λ_max < 2 is named
    assert runs["divergence_reason"][0] == ""


def test_steps_to_target_matches_the_closed_form(registry):
    e = experiment(registry, [{"rule": "test_gd", "learning_rate": [0.5, 0.05]}], steps=30, target_loss=0.01)
    runs = run_experiment(e, registry=registry, workers=1).runs
    lam, start = (1.0, 0.25), (1.0, -2.0)
    for i, alpha in enumerate((0.5, 0.05)):
        losses = [0.5 * sum(l * (1 - alpha * l) ** (2 * t) * s * s for l, s in zip(lam, start)) for t in range(31)]
        hits = [t for t, v in enumerate(losses) if v <= 0.01]
        expected = hits[0] if hits else None
        if expected is None:
            assert np.isnan(runs["steps_to_target"][i])
        else:
            assert runs["steps_to_target"][i] == expected


def test_a_failing_rule_fails_only_its_own_runs(registry):
    rules = [
        {"rule": "test_gd", "learning_rate": 0.1},
        {"rule": "test_explode", "learning_rate": 0.1},
        {"rule": "test_bad_shape", "learning_rate": 0.1},
        {"rule": "test_gd", "learning_rate": 0.3},
    ]
    e = experiment(registry, rules, seeds=2)
    res = run_experiment(e, registry=registry, workers=1)
    runs = res.runs
    assert kinds(runs["status"]) == ["ok"] * 2 + ["failed"] * 4 + ["ok"] * 2
    # each error names the rule and the line of its own code that raised (or returned the wrong shape)
    assert set(runs["error"][2:4]) == {f"rule 'test_explode' ({PLUGIN_FILE}:21): ValueError: boom at step 3"}
    assert all(
        text.startswith(f"rule 'test_bad_shape' ({PLUGIN_FILE}:25) returned updates of shape")
        for text in runs["error"][4:6]
    )
    assert (runs["error"][[0, 1, 6, 7]] == "").all()
    assert list(res.metrics.groupby("run_id")["step"].max()) == [20, 20, 3, 3, 0, 0, 20, 20]
    assert res.meta["chunks"] == 1  # tiny problem: all entries share one stack, the failures are per entry
    alone = run_experiment(experiment(registry, [rules[0], rules[3]], seeds=2), registry=registry, workers=1)
    for run_id, alone_id in ((0, 0), (1, 1), (6, 2), (7, 3)):
        np.testing.assert_array_equal(res.run_metrics(run_id)["loss"], alone.run_metrics(alone_id)["loss"])


SPIRALS = {"name": "spirals", "samples": 64, "hidden": [5, 3], "activation": "tanh"}


def spirals(registry, rules, **settings):
    return experiment(registry, rules, problem=SPIRALS, **settings)


def test_a_failing_rule_alone_in_its_chunk(registry, monkeypatch):
    monkeypatch.setattr(runner, "CHUNK_BYTES", 1)  # one run per chunk: the rule's exception ends the chunk
    e = experiment(registry, [{"rule": "test_explode", "learning_rate": 0.1}, {"rule": "test_gd"}])
    runs = run_experiment(e, registry=registry, workers=1).runs
    assert kinds(runs["status"]) == ["failed", "ok"]
    assert runs["error"][0] == f"rule 'test_explode' ({PLUGIN_FILE}:21): ValueError: boom at step 3"


def test_same_seed_gives_the_same_initial_weights_for_every_rule(registry):
    e = spirals(
        registry,
        [{"rule": "gd", "learning_rate": [0.1, 1.0]}, {"rule": "adam", "learning_rate": 0.01}],
        seeds=[4, 9],
        steps=3,
    )
    res = run_experiment(e, registry=registry, workers=1)
    by_seed = {}
    for run in e.runs():
        w = np.concatenate([res.weights[f"initial.{k}"][run.run_id].ravel() for k in ("W1", "b1", "W2", "W3")])
        by_seed.setdefault(run.seed, []).append(w)
    for rows in by_seed.values():
        for row in rows[1:]:
            np.testing.assert_array_equal(row, rows[0])
    assert not np.array_equal(by_seed[4][0], by_seed[9][0])
    # row 0 of every run with the same seed has the same loss: same data, same weights
    first = res.metrics[res.metrics["step"] == 0].set_index("run_id")["loss"]
    assert first[0] == first[2] == first[4] and first[1] == first[3] == first[5]


def plain_mlp_gd(x, y, weights, alpha, steps):
    """Reference: full-batch GD on a tanh MLP with binary cross-entropy on logits, backprop written out."""
    ws = [w.copy() for w in weights]
    losses = []
    for t in range(steps + 1):
        acts, zs = [x], []
        for i in range(0, len(ws), 2):
            z = acts[-1] @ ws[i] + ws[i + 1]
            zs.append(z)
            acts.append(z if i == len(ws) - 2 else np.tanh(z))
        out = acts[-1]
        losses.append(np.mean(np.maximum(out, 0) - out * y + np.log1p(np.exp(-np.abs(out)))))
        if t == steps:
            break
        delta = (1 / (1 + np.exp(-out)) - y) / len(y)
        grads = []
        for layer in range(len(ws) // 2 - 1, -1, -1):
            grads = [acts[layer].T @ delta, delta.sum(axis=0)] + grads
            if layer:
                delta = (delta @ ws[2 * layer].T) * (1 - acts[layer] ** 2)
        ws = [w - alpha * g for w, g in zip(ws, grads)]
    return np.array(losses)


def test_mlp_runs_match_a_plain_numpy_backprop_loop(registry):
    e = spirals(registry, [{"rule": "gd", "learning_rate": [0.3, 3.0]}], seeds=[0, 1], steps=15, eval_every=4)
    res = run_experiment(e, registry=registry, workers=1)
    instance = registry.problem("spirals").build(e.problem_settings)
    x, y = instance.dataset.x_train, instance.dataset.y_train
    for run in e.runs():
        weights = [res.weights[f"initial.{k}"][run.run_id] for k in ("W1", "b1", "W2", "b2", "W3", "b3")]
        expected = plain_mlp_gd(x, y, weights, run.learning_rate, e.steps)
        m = res.run_metrics(run.run_id)
        np.testing.assert_allclose(m["loss"], expected, rtol=1e-12)
        layers = m[["grad_norm.layer1", "grad_norm.layer2", "grad_norm.layer3"]].to_numpy()
        np.testing.assert_allclose(m["grad_norm"] ** 2, (layers**2).sum(axis=1), rtol=1e-12)
        evaluated = m.loc[m["test_accuracy"].notna(), "step"].tolist()
        assert evaluated == [0, 4, 8, 12, 15]
        assert m["test_loss"].notna().tolist() == m["test_accuracy"].notna().tolist()


def test_rerun_is_bit_identical_and_chunking_does_not_change_bits(registry, monkeypatch):
    # the diverging α comes first: dropping it shifts the stacked columns of the others
    e = spirals(
        registry,
        [
            {"rule": "momentum", "learning_rate": [30.0, 0.01, 0.1, 1.0]},
            {"rule": "adam", "learning_rate": [0.001, 0.01, 0.1]},
        ],
        seeds=2,
        steps=25,
        divergence_factor=3,
    )
    first = run_experiment(e, registry=registry, workers=1)
    second = run_experiment(e, registry=registry, workers=1)
    monkeypatch.setattr(runner, "CHUNK_BYTES", 1)  # one run per chunk
    single = run_experiment(e, registry=registry, workers=1)
    monkeypatch.setattr(runner, "CHUNK_BYTES", 1 << 40)  # every run, both rules, in one chunk
    stacked = run_experiment(e, registry=registry, workers=1)
    monkeypatch.setattr(
        runner, "CHUNK_BYTES", runner._bytes_per_run(e, registry.problem("spirals").build(e.problem_settings)) * 5
    )  # chunks of 5: one spans both rules
    mixed = run_experiment(e, registry=registry, workers=1)
    assert single.meta["chunks"] == e.n_runs and stacked.meta["chunks"] == 1 and mixed.meta["chunks"] == 3
    assert (first.runs["status"][:2] == "diverged").all()
    assert kinds(first.runs["status"][2:]) == ["ok"] * (len(first.runs) - 2)
    for other in (second, single, stacked, mixed):
        pd.testing.assert_frame_equal(first.metrics, other.metrics, check_exact=True)
        pd.testing.assert_frame_equal(first.runs, other.runs, check_exact=True)
        for key, value in first.weights.items():
            np.testing.assert_array_equal(value, other.weights[key])


def test_process_pool_results_equal_serial():
    registry = load_registry([PLUGIN_FILE], entry_points=False, use_env=False)
    e = Experiment.from_dict(
        {
            "steps": 20,
            "seeds": 2,
            "eval_every": 5,
            "problem": SPIRALS,
            "rules": [
                {"rule": "test_gd", "learning_rate": [0.1, 1.0]},
                {"rule": "adam", "learning_rate": [0.01, 0.1]},
                {"rule": "gd", "learning_rate": 100.0},
            ],
        },
        registry,
    )
    serial = run_experiment(e, registry=registry, workers=1)
    seen = []
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = run_experiment(e, registry=registry, executor=pool, progress=lambda d, t: seen.append((d, t)))
    pd.testing.assert_frame_equal(serial.metrics, parallel.metrics, check_exact=True)
    pd.testing.assert_frame_equal(serial.runs, parallel.runs, check_exact=True)
    for key, value in serial.weights.items():
        np.testing.assert_array_equal(value, parallel.weights[key])
    assert parallel.meta["chunks"] >= 4  # split so both workers have work
    assert seen[-1] == (e.n_runs * 20, e.n_runs * 20)


def test_plugins_registered_in_process_only_cannot_go_to_workers(registry):
    from descentlab.errors import SpecError

    e = experiment(registry, [{"rule": "test_gd", "learning_rate": [0.1, 0.2]}])
    with pytest.raises(SpecError, match="workers"):
        run_experiment(e, registry=registry, workers=2)


def test_mini_batches_are_seeded_permutations_shared_across_rules(registry):
    test_runner_plugin.BATCH_LOG.clear()
    e = experiment(
        registry,
        [{"rule": "gd", "learning_rate": 0.1}, {"rule": "test_gd", "learning_rate": 0.5}],
        problem={"name": "test_samples", "samples": 20},
        batch_size=6,
        seeds=[0, 1],
        steps=7,
        eval_every=2,
    )
    res = run_experiment(e, registry=registry, workers=1)
    log = np.array(test_runner_plugin.BATCH_LOG)  # one stack of all 4 runs per step (a tiny problem)
    assert log.shape == (e.steps + 1, 4, 6)
    first_rule, second_rule = log[:, :2], log[:, 2:]  # (steps+1, seeds, B)
    np.testing.assert_array_equal(first_rule, second_rule)  # same seed, same batches, whatever the rule
    for run in range(2):
        for epoch in (0, 1):  # 20 // 6 = 3 batches per epoch, drawn without replacement
            drawn = first_rule[3 * epoch : 3 * epoch + 3, run].ravel()
            assert len(set(drawn)) == 18
    assert not np.array_equal(first_rule[:, 0], first_rule[:, 1])  # seeds differ
    # each row's loss is that mini-batch's loss at θ_t (reconstructed from the final/initial weights path)
    instance = registry.problem("test_samples").build(e.problem_settings)
    theta = res.weights["path"][0]
    for t in range(e.steps + 1):
        batch = instance.x[first_rule[t, 0]]
        expected = 0.5 * ((theta[t] - batch) ** 2).sum(axis=1).mean()
        assert res.run_metrics(0)["loss"][t] == pytest.approx(expected, rel=1e-14)
    assert res.run_metrics(0)["test_loss"].notna().sum() == 5  # steps 0, 2, 4, 6 and the last


def test_batch_larger_than_the_data_is_a_spec_error(registry):
    from descentlab.errors import SpecError

    e = experiment(registry, [{"rule": "gd"}], problem={"name": "test_samples", "samples": 20}, batch_size=21)
    with pytest.raises(SpecError, match="batch_size"):
        run_experiment(e, registry=registry, workers=1)


def test_sharpness_every_measures_the_top_eigenvalue(registry):
    e = experiment(
        registry,
        [{"rule": "test_gd", "learning_rate": 0.1}],
        steps=10,
        sharpness_every=5,
        problem={"name": "test_quadratic", "lam1": 3.0, "lam2": 0.5},
    )
    m = run_experiment(e, registry=registry, workers=1).metrics
    measured = m.loc[m["sharpness"].notna(), ["step", "sharpness"]]
    assert measured["step"].tolist() == [0, 5, 10]
    np.testing.assert_allclose(measured["sharpness"], 3.0, rtol=1e-6)


def test_progress_counts_run_steps_up_to_the_total(registry):
    seen = []
    e = experiment(registry, [{"rule": "test_gd", "learning_rate": [0.1, 0.2]}, {"rule": "gd"}], steps=50)
    run_experiment(e, registry=registry, workers=1, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (150, 150)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_float32_runs_stay_float32(registry):
    e = spirals(registry, [{"rule": "adam", "learning_rate": 0.01}], dtype="float32", steps=5)
    res = run_experiment(e, registry=registry, workers=1)
    assert res.weights["final.W1"].dtype == np.float32
    assert kinds(res.runs["status"])[0] == "ok"


def test_default_workers_use_processes_only_for_long_jobs_of_rebuildable_plugins(registry, monkeypatch):
    builtin = load_registry(entry_points=False, use_env=False)
    e = Experiment.from_dict(
        {"steps": 10, "seeds": 2, "problem": SPIRALS, "rules": [{"rule": "gd", "learning_rate": [0.1, 1.0]}]}, builtin
    )
    instance = builtin.problem("spirals").build(e.problem_settings)
    assert runner.default_workers(e, instance, builtin) == 1  # far below PARALLEL_MIN_SECONDS
    monkeypatch.setattr(runner, "PARALLEL_MIN_SECONDS", 0.0)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)  # the decision, whatever machine runs the test
    assert runner.default_workers(e, instance, builtin) == 2
    in_process = experiment(registry, [{"rule": "test_gd"}])
    assert (
        runner.default_workers(
            in_process, registry.problem("test_quadratic").build(in_process.problem_settings), registry
        )
        == 1
    )  # a worker could not find test_gd
    parallel = run_experiment(e, registry=builtin)
    assert parallel.meta["workers"] == 2
    serial = run_experiment(e, registry=builtin, workers=1)
    pd.testing.assert_frame_equal(serial.metrics, parallel.metrics, check_exact=True)


def test_processes_and_blas_threads_train_the_same_bits():
    """The plans a job can run under (benchmarks/wide.py times them: docs/dev/speed.md, "Wide
    networks") train the same bits: 2 worker processes with one BLAS thread each, this process with
    2 BLAS threads, and with 1. The net is wide enough that OpenBLAS splits its matrix products over
    threads (256 x 64 x 64 multiply-adds, above its 4 x 65536), so the thread count is really tried."""
    from threadpoolctl import threadpool_info, threadpool_limits

    builtin = load_registry(entry_points=False, use_env=False)
    e = Experiment.from_dict(
        {
            "steps": 6,
            "seeds": 2,
            "eval_every": 3,
            "problem": {"name": "spirals", "samples": 320, "test_fraction": 0.2, "hidden": [64, 64]},
            "rules": [{"rule": "gd", "learning_rate": [0.1, 3.0]}, {"rule": "adam", "learning_rate": 0.01}],
        },
        builtin,
    )
    with threadpool_limits(2, user_api="blas"):
        blas_threads = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        threaded = run_experiment(e, registry=builtin, workers=1)
    with threadpool_limits(1, user_api="blas"):
        single = run_experiment(e, registry=builtin, workers=1)
    processes = run_experiment(e, registry=builtin, workers=2)
    assert processes.meta["workers"] == 2 and threaded.meta["workers"] == 1
    assert blas_threads == {2} or (runner.os.cpu_count() or 1) < 2
    for other in (single, processes):
        assert list(other.metrics.columns) == list(threaded.metrics.columns)
        for column in threaded.metrics.select_dtypes("number").columns:
            assert np.array_equal(threaded.metrics[column], other.metrics[column], equal_nan=True), column
        assert threaded.runs["status"].tolist() == other.runs["status"].tolist()
        assert sorted(other.weights) == sorted(threaded.weights)
        for key, value in threaded.weights.items():
            assert np.array_equal(value, other.weights[key], equal_nan=True), key


def test_tiny_and_general_bookkeeping_paths_agree(registry, monkeypatch):
    e = experiment(
        registry, [{"rule": "test_gd", "learning_rate": [2.5, 0.5, 0.1]}, {"rule": "momentum"}], steps=30, seeds=2
    )
    tiny = run_experiment(e, registry=registry, workers=1)
    monkeypatch.setattr(runner, "SMALL_PARAMS", 0)
    general = run_experiment(e, registry=registry, workers=1)
    pd.testing.assert_frame_equal(tiny.runs, general.runs, check_exact=True)
    pd.testing.assert_frame_equal(tiny.metrics, general.metrics, rtol=1e-15)
    np.testing.assert_array_equal(tiny.weights["path"], general.weights["path"])


def test_everything_at_once_does_not_depend_on_chunking(registry, monkeypatch):
    """Mini-batches, evaluation, sharpness, divergence and a failing rule in one stack, or run by run."""
    e = experiment(
        registry,
        [
            {"rule": "gd", "learning_rate": [0.1, 1e3, 5.0]},
            {"rule": "test_explode"},
            {"rule": "adam", "learning_rate": [0.1, 1e3]},
        ],
        problem={"name": "test_samples", "samples": 20},
        steps=30,
        seeds=3,
        batch_size=4,
        eval_every=5,
        sharpness_every=10,
    )
    together = run_experiment(e, registry=registry, workers=1)
    monkeypatch.setattr(runner, "CHUNK_BYTES", 1)
    alone = run_experiment(e, registry=registry, workers=1)
    assert together.meta["chunks"] == 1 and alone.meta["chunks"] == e.n_runs
    pd.testing.assert_frame_equal(together.metrics, alone.metrics, check_exact=True)
    pd.testing.assert_frame_equal(together.runs, alone.runs, check_exact=True)
    assert (
        kinds(together.runs["status"]) == ["ok"] * 3 + ["diverged"] * 6 + ["failed"] * 3 + ["ok"] * 3 + ["diverged"] * 3
    )


@pytest.mark.parametrize(
    "problem",
    [
        {"name": "xor", "hidden": [4]},  # 17 parameters: small path
        {"name": "moons", "samples": 64, "hidden": [16]},
    ],
)  # 65: general path
def test_per_layer_gradient_norms_equal_a_direct_computation(problem):
    """‖∂J/∂(layer ℓ)‖ from a plain GD loop, on both sides of SMALL_PARAMS, with a run that diverges."""
    from descentlab.registry import get_registry

    spec = {
        "steps": 12,
        "seeds": [0, 1],
        "eval_every": 0,
        "divergence_factor": 3,
        "problem": problem,
        "rules": [{"rule": "gd", "learning_rate": [0.5, 300.0]}],
    }
    e = Experiment.from_dict(spec)
    res = run_experiment(e, workers=1)
    instance = get_registry().problem(problem["name"]).build(dict(e.problem_settings))
    assert (instance.layout.size <= runner.SMALL_PARAMS) == (problem["name"] == "xor")
    layers = instance.layout.layer_slices()
    assert len(layers) == 2
    assert (res.runs["status"] == "diverged").any()
    for run in e.runs():
        m = res.run_metrics(run.run_id)
        theta = instance.init_params([run.seed])[0]
        for t in range(len(m)):
            g = instance.loss_and_grad(theta[None, :])[1][0]
            for name, slices in layers:
                direct = np.sqrt(sum(float(np.sum(g[s] ** 2)) for s in slices))
                assert m[f"grad_norm.{name}"][t] == pytest.approx(direct, rel=1e-12), (run.run_id, t, name)
            theta = theta - run.learning_rate * g


def test_snapshots_are_the_weights_of_shorter_runs():
    """snapshot_every = 4 over 10 steps keeps θ at 0, 4, 8, 10: each equals the final weights of the
    same run trained for that many steps, and a diverged run's later snapshots are NaN."""
    spec = {
        "steps": 10,
        "seeds": [0, 1],
        "eval_every": 0,
        "snapshot_every": 4,
        "divergence_factor": 3,
        "problem": {"name": "moons", "samples": 32, "hidden": [4]},
        "rules": [{"rule": "momentum", "learning_rate": [0.3, 300.0]}],
    }
    e = Experiment.from_dict(spec)
    res = run_experiment(e, workers=1)
    assert list(res.weights["snapshot_steps"]) == [0, 4, 8, 10]
    snaps = res.weights["snapshots"]
    assert snaps.shape == (
        4,
        4,
        res.weights["initial.W1"][0].size
        + res.weights["initial.b1"][0].size
        + res.weights["initial.W2"][0].size
        + res.weights["initial.b2"][0].size,
    )
    layout_names = [k[len("final.") :] for k in res.weights if k.startswith("final.")]
    for k, t in enumerate([0, 4, 8, 10]):
        short = (
            run_experiment(Experiment.from_dict({**spec, "steps": max(t, 1), "snapshot_every": 0}), workers=1)
            if t
            else None
        )
        for run in e.runs():
            if run.learning_rate > 1 and res.runs["diverged_at"][run.run_id] <= t:
                assert np.isnan(snaps[run.run_id, k]).all() or t == 0
                continue
            prefix, source = ("initial.", res) if t == 0 else ("final.", short)
            flat = np.concatenate([source.weights[prefix + name][run.run_id].ravel() for name in layout_names])
            np.testing.assert_array_equal(snaps[run.run_id, k], flat)
    assert Experiment.from_dict(e.to_dict()).snapshot_every == 4
    assert "snapshot_every" not in Experiment.from_dict({**spec, "snapshot_every": 0}).to_dict()
