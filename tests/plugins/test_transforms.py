"""Built-in gradient transforms and wrappers: each step by hand, against PyTorch and the built-in
options they reproduce, Lookahead against a written-out loop, runs independent of their batch."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from descentlab import Experiment, HyperParam, SpecError, Transform, hookimpl, run_experiment
from descentlab.layout import ParamLayout
from descentlab.registry import load_registry
from descentlab.transforms import chain_hyper, chain_rule, describe

NOISE_STREAM = 0x6E6F6973


@pytest.fixture(scope="module")
def registry():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry


def hyper(transform, rows, seeds=None):
    """Declared hyperparameters as (R, 1) arrays, one row per run, and the runs' seeds."""
    out = {h.name: np.array([[float(row.get(h.name, h.default))] for row in rows]) for h in transform.hyperparams}
    out["seed"] = np.array(seeds if seeds is not None else range(len(rows)), dtype=np.int64).reshape(-1, 1)
    return out


def untouched(function, *arrays):
    """Call ``function(*arrays)`` and check it wrote into none of them."""
    before = [a.copy() for a in arrays]
    result = function(*arrays)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
    return result


def spec(rules, steps=30, seeds=2, problem=None, **settings):
    d = {
        "steps": steps,
        "seeds": seeds,
        "eval_every": 0,
        "problem": problem or {"name": "moons", "samples": 32, "hidden": [4]},
        "rules": rules,
    }
    d.update(settings)
    return d


def run(registry, d, **kwargs):
    return run_experiment(Experiment.from_dict(d, registry), registry=registry, workers=1, **kwargs)


def final_params(results):
    layout_names = sorted({k.split(".", 1)[1] for k in results.weights if k.startswith("final.")})
    return {name: results.weights[f"final.{name}"] for name in layout_names}


# ---- each step against a hand-computed value --------------------------------------------------------


def test_clip_global_norm_scales_each_run_by_its_own_norm(registry):
    t = registry.transform("clip_global_norm")
    grad = np.array([[3.0, 4.0], [0.3, 0.4], [3.0, 4.0]])
    params = np.zeros_like(grad)
    h = hyper(t, [{"max_norm": 1.0}, {"max_norm": 1.0}, {"max_norm": 10.0}])
    g, _ = untouched(lambda g, p: t.update(g, None, p, h, 0), grad, params)
    np.testing.assert_array_equal(g[0], [3.0 / (5.0 + 1e-6), 4.0 / (5.0 + 1e-6)])  # 5 > 1: clipped
    np.testing.assert_array_equal(g[1], [0.3, 0.4])  # 0.5 < 1: as is
    np.testing.assert_array_equal(g[2], [3.0, 4.0])  # 5 < 10: as is


def test_clip_by_value_clips_each_component(registry):
    t = registry.transform("clip_by_value")
    grad = np.array([[2.0, -3.0, 0.5], [2.0, -3.0, 0.5]])
    h = hyper(t, [{"clip_value": 1.0}, {"clip_value": 2.5}])
    g, _ = untouched(lambda g, p: t.update(g, None, p, h, 0), grad, np.zeros_like(grad))
    np.testing.assert_array_equal(g, [[1.0, -1.0, 0.5], [2.0, -2.5, 0.5]])


def test_weight_decay_l2_adds_lambda_theta(registry):
    t = registry.transform("weight_decay_l2")
    grad, params = np.array([[1.0, -2.0], [0.5, 0.0]]), np.array([[10.0, 20.0], [-4.0, 8.0]])
    g, _ = untouched(lambda g, p: t.update(g, None, p, hyper(t, [{"decay": 0.1}, {"decay": 0.5}]), 0), grad, params)
    np.testing.assert_allclose(g, [[1.0 + 1.0, -2.0 + 2.0], [0.5 - 2.0, 0.0 + 4.0]], rtol=0, atol=1e-15)


def test_weight_decay_decoupled_shrinks_theta_by_alpha_lambda(registry):
    t = registry.transform("weight_decay_decoupled")
    assert t.is_wrapper and t.update is None
    updates, params = np.array([[0.1, -0.2]]), np.array([[10.0, -20.0]])
    alpha = np.array([[0.01]])
    u, _ = untouched(lambda u, p: t.after(u, None, p, alpha, hyper(t, [{"decay": 0.5}]), 0), updates, params)
    np.testing.assert_allclose(u, [[0.1 - 0.01 * 0.5 * 10.0, -0.2 + 0.01 * 0.5 * 20.0]], rtol=0, atol=1e-15)


def test_gradient_noise_is_each_runs_own_stream_with_annealed_variance(registry):
    t = registry.transform("gradient_noise")
    grad = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    h = hyper(t, [{"eta": 0.3, "gamma": 0.55}, {"eta": 0.3, "gamma": 0.55}], seeds=[7, 11])
    state = t.init(np.zeros_like(grad), h)
    expected = {s: np.random.default_rng([s, NOISE_STREAM]) for s in (7, 11)}
    for step in range(3):
        g, state = untouched(lambda g, p: t.update(g, state, p, h, step), grad, np.zeros_like(grad))
        sigma = np.sqrt(0.3 / (1.0 + step) ** 0.55)
        for row, s in enumerate((7, 11)):
            np.testing.assert_allclose(g[row], grad[row] + sigma * expected[s].standard_normal(3), rtol=0, atol=1e-15)


def test_gradient_centralization_removes_each_output_columns_mean():
    from descentlab.plugins.transforms import TRANSFORMS

    t = {x.name: x for x in TRANSFORMS}["gradient_centralization"]
    layout = ParamLayout([("W1", (2, 3), "layer1"), ("b1", (3,), "layer1")])
    # W = [[1, 2, 3], [5, 2, -1]] (n_in = 2 rows, n_out = 3 columns), b = [9, 9, 9]
    grad = np.array([[1.0, 2.0, 3.0, 5.0, 2.0, -1.0, 9.0, 9.0, 9.0]])
    state = t.init(np.zeros_like(grad), hyper(t, [{}]), layout=layout)
    g, _ = untouched(lambda g, p: t.update(g, state, p, hyper(t, [{}]), 0), grad, np.zeros_like(grad))
    # column means 3, 2, 1: W - mean = [[-2, 0, 2], [2, 0, -2]]; the bias is left alone
    np.testing.assert_array_equal(g, [[-2.0, 0.0, 2.0, 2.0, 0.0, -2.0, 9.0, 9.0, 9.0]])
    # a problem without a weight matrix (a landscape's point) is unchanged
    flat = ParamLayout([("theta", (2,), "point")])
    state = t.init(np.zeros((1, 2)), {}, layout=flat)
    g, _ = t.update(np.array([[1.0, 3.0]]), state, np.zeros((1, 2)), {}, 0)
    np.testing.assert_array_equal(g, [[1.0, 3.0]])


def test_lookahead_pulls_to_the_slow_weights_every_k_steps(registry):
    t = registry.transform("lookahead")
    h = hyper(t, [{"sync_every": 2, "alpha": 0.5}])
    theta0 = np.array([[4.0, 0.0]])
    slow = t.init(theta0, h)
    alpha = np.array([[1.0]])
    # step 0 (not a sync): the rule's update passes through
    u, slow = untouched(lambda u, p: t.after(u, slow, p, alpha, h, 0), np.array([[-1.0, 2.0]]), theta0)
    np.testing.assert_array_equal(u, [[-1.0, 2.0]])
    theta1 = theta0 + u  # (3, 2)
    # step 1 (t + 1 = 2): fast θ' = (3, 2) + (-1, 2) = (2, 4); φ = (4, 0) + ½((2, 4) − (4, 0)) = (3, 2)
    u, slow = untouched(lambda u, p: t.after(u, slow, p, alpha, h, 1), np.array([[-1.0, 2.0]]), theta1)
    np.testing.assert_array_equal(theta1 + u, [[3.0, 2.0]])
    np.testing.assert_array_equal(slow, [[3.0, 2.0]])


# ---- against PyTorch and the built-in options they reproduce --------------------------------------------


def test_clip_global_norm_matches_torch_clip_grad_norm_per_run(registry):
    torch = pytest.importorskip("torch")
    t = registry.transform("clip_global_norm")
    rng = np.random.default_rng(3)
    scales = np.array([0.01, 0.5, 2.0, 50.0])
    grad = rng.standard_normal((4, 7)) * scales[:, None]
    max_norm = np.array([1.0, 1.0, 0.3, 10.0])
    g, _ = t.update(grad, None, np.zeros_like(grad), {"max_norm": max_norm[:, None]}, 0)
    for r in range(4):
        # the run's parameters as two tensors: the norm is global over both
        tensors = [
            torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)),
            torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64)),
        ]
        tensors[0].grad = torch.tensor(grad[r, :3])
        tensors[1].grad = torch.tensor(grad[r, 3:].reshape(2, 2))
        torch.nn.utils.clip_grad_norm_(tensors, max_norm=float(max_norm[r]))
        expected = np.concatenate([tensors[0].grad.numpy(), tensors[1].grad.numpy().ravel()])
        np.testing.assert_allclose(g[r], expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [[4], [16]])  # 17 parameters (decay expanded to (R, P)) and 65 ((R, 1))
def test_l2_transform_then_gd_is_gd_with_weight_decay_bit_for_bit(registry, dtype, hidden):
    problem = {"name": "moons", "samples": 32, "hidden": hidden}
    d = spec(
        [
            {"rule": "gd", "learning_rate": [0.1, 0.5], "weight_decay": 0.03},
            {"rule": "gd", "learning_rate": [0.1, 0.5], "transforms": [{"name": "weight_decay_l2", "decay": 0.03}]},
        ],
        problem=problem,
        dtype=dtype,
    )
    results = run(registry, d)
    loss = results.metric("loss")
    np.testing.assert_array_equal(loss[:4], loss[4:])
    np.testing.assert_array_equal(results.metric("step_size")[:4], results.metric("step_size")[4:])
    for name, w in final_params(results).items():
        np.testing.assert_array_equal(w[:4], w[4:], err_msg=name)


def test_decoupled_decay_then_adam_is_adamw_bit_for_bit(registry):
    # equal to the last bit (the same operations in the same order), stronger than the 1e-14 asked for
    d = spec(
        [
            {
                "rule": "adamw",
                "learning_rate": 0.02,
                "weight_decay": 0.1,
                "schedule": {"name": "cosine", "warmup_steps": 5},
            },
            {
                "rule": "adam",
                "learning_rate": 0.02,
                "schedule": {"name": "cosine", "warmup_steps": 5},
                "transforms": [{"name": "weight_decay_decoupled", "decay": 0.1}],
            },
        ],
        steps=60,
        seeds=3,
        problem={"name": "moons", "samples": 32, "hidden": [16]},
    )
    results = run(registry, d)
    np.testing.assert_array_equal(results.metric("loss")[:3], results.metric("loss")[3:])
    for name, w in final_params(results).items():
        np.testing.assert_array_equal(w[:3], w[3:], err_msg=name)


def test_lookahead_around_momentum_matches_a_written_out_loop(registry):
    problem = {"name": "moons", "samples": 32, "hidden": [4]}
    alpha, mu, k, pull, steps, seeds = 0.2, 0.9, 3, 0.5, 25, [0, 1]
    results = run(
        registry,
        spec(
            [
                {
                    "rule": "momentum",
                    "learning_rate": alpha,
                    "momentum": mu,
                    "transforms": [{"name": "lookahead", "sync_every": k, "alpha": pull}],
                }
            ],
            steps=steps,
            seeds=seeds,
            problem=problem,
        ),
    )
    instance = registry.problem("moons").build(
        Experiment.from_dict(spec([{"rule": "gd"}], problem=problem), registry).problem_settings
    )
    theta = instance.init_params(seeds, np.float64).astype(np.float64)
    slow, velocity, losses = theta.copy(), np.zeros_like(theta), []
    for t in range(steps):
        loss, grad = instance.loss_and_grad(theta, None)
        losses.append(loss.copy())
        velocity = mu * velocity + grad  # PyTorch SGD momentum: v ← μv + g, θ ← θ − αv
        theta = theta - alpha * velocity
        if (t + 1) % k == 0:  # Lookahead: φ ← φ + α(θ − φ), θ ← φ
            slow = slow + pull * (theta - slow)
            theta = slow.copy()
    np.testing.assert_allclose(results.metric("loss")[:, :steps], np.array(losses).T, rtol=1e-12, atol=0)
    final = instance.layout.flatten(final_params(results))
    np.testing.assert_allclose(final, theta, rtol=1e-12, atol=1e-14)


# ---- runs stay independent; noise is reproducible ---------------------------------------------------------

ALL = [
    {"name": "gradient_noise", "eta": 0.05},
    {"name": "clip_global_norm", "max_norm": 0.5},
    {"name": "clip_by_value", "clip_value": 0.2},
    {"name": "gradient_centralization"},
    {"name": "weight_decay_l2", "decay": 0.01},
    {"name": "weight_decay_decoupled", "decay": 0.01},
    {"name": "lookahead", "sync_every": 4},
]


def test_runs_stacked_equal_each_run_alone_even_when_others_diverge(registry):
    rules = [
        {"rule": "adam", "learning_rate": [0.01, 1e3], "transforms": ALL},
        {"rule": "momentum", "learning_rate": 0.1, "transforms": ALL[:3]},
        {"rule": "gd", "learning_rate": 0.1},
    ]
    together = run(registry, spec(rules, steps=40, seeds=[3, 5]))
    assert "diverged" in set(together.runs["status"]) and together.runs["status"].nunique() > 1
    loss = together.metric("loss")
    weights = final_params(together)
    for _, row in together.runs.iterrows():
        entry = dict(rules[row["entry"]], learning_rate=row["learning_rate"])
        alone = run(registry, spec([entry], steps=40, seeds=[int(row["seed"])]))
        np.testing.assert_allclose(
            alone.metric("loss")[0],
            loss[row["run_id"]],
            rtol=1e-13,
            atol=0,
            equal_nan=True,
            err_msg=str(dict(row[["label", "seed", "learning_rate"]])),
        )
        if row["status"] != "diverged":
            for name, w in final_params(alone).items():
                np.testing.assert_allclose(w[0], weights[name][row["run_id"]], rtol=1e-12, atol=1e-15)


def test_gradient_noise_is_deterministic_per_seed_and_differs_between_seeds(registry):
    d = spec(
        [
            {"rule": "gd", "learning_rate": 0.1, "transforms": [{"name": "gradient_noise", "eta": 0.1}]},
            {"rule": "gd", "learning_rate": 0.1},
        ],
        seeds=[0, 1],
        steps=20,
    )
    first, again = run(registry, d), run(registry, d)
    np.testing.assert_array_equal(first.metric("loss"), again.metric("loss"))
    loss = first.metric("loss")
    assert not np.array_equal(loss[0], loss[1])  # seed 0 and seed 1 draw different noise
    assert not np.array_equal(loss[0, 1:], loss[2, 1:])  # the noise changes the run
    # through worker jobs (the spec travels as a dict): the same numbers
    with ThreadPoolExecutor(max_workers=2) as pool:
        pooled = run_experiment(Experiment.from_dict(d, registry), registry=registry, executor=pool)
    np.testing.assert_array_equal(pooled.metric("loss"), loss)


def test_no_transforms_means_the_rule_alone_and_an_empty_column(registry):
    d = spec([{"rule": "adam", "learning_rate": 0.01}])
    plain, empty = run(registry, d), run(registry, spec([{"rule": "adam", "learning_rate": 0.01, "transforms": []}]))
    np.testing.assert_array_equal(plain.metric("loss"), empty.metric("loss"))
    assert plain.runs["transforms"].tolist() == ["", ""]
    assert "transforms" not in Experiment.from_dict(d, registry).to_dict()["rules"][0]
    assert "transforms" not in plain.meta["plugins"]


def test_runs_table_and_meta_record_the_transforms(registry):
    results = run(
        registry,
        spec(
            [
                {
                    "rule": "gd",
                    "learning_rate": 0.1,
                    "transforms": [
                        {"name": "clip_global_norm", "max_norm": 1.0},
                        {"name": "weight_decay_l2", "decay": 0.01},
                    ],
                }
            ],
            steps=5,
        ),
    )
    assert set(results.runs["transforms"]) == {"clip_global_norm(max_norm=1)>weight_decay_l2(decay=0.01)"}
    assert set(results.runs["label"]) == {"gd + clip_global_norm + weight_decay_l2"}
    assert results.meta["plugins"]["transforms"] == {"clip_global_norm": "built-in", "weight_decay_l2": "built-in"}
    assert (
        describe([]) == ""
        and describe([("lookahead", {"sync_every": 5, "alpha": 0.25})]) == "lookahead(sync_every=5,alpha=0.25)"
    )


def test_saved_results_keep_the_transforms(registry, tmp_path):
    from descentlab import load_results, save_results

    results = run(registry, spec([{"rule": "gd", "learning_rate": 0.1, "transforms": ["clip_by_value"]}], steps=5))
    folder = save_results(results, tmp_path)
    again = load_results(folder)
    assert again.experiment.entries[0].transforms == results.experiment.entries[0].transforms
    assert list(again.runs["transforms"]) == list(results.runs["transforms"])


# ---- the experiment entry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transforms, field, accepted",
    [
        ("clip_global_norm", "rules[0].transforms", "a list of transform tables"),
        ([{"max_norm": 1.0}], "rules[0].transforms[0]", "a table with a name"),
        ([3], "rules[0].transforms[0]", "a table with a name"),
        ([{"name": "clip"}], "rules[0].transforms[0].name", "one of clip_by_value, clip_global_norm"),
        ([{"name": "clip_global_norm", "max_nrom": 1.0}], "rules[0].transforms[0]", "one of the keys name, max_norm"),
        ([{"name": "clip_global_norm", "max_norm": 0.0}], "rules[0].transforms[0].max_norm", "a number in (0, inf)"),
        ([{"name": "clip_global_norm", "max_norm": [1.0, 2.0]}], "rules[0].transforms[0].max_norm", "not grid axes"),
        (
            ["lookahead", {"name": "lookahead", "sync_every": 0}],
            "rules[0].transforms[1].sync_every",
            "an integer in [1",
        ),
    ],
)
def test_a_bad_transforms_field_is_one_line_naming_it(registry, transforms, field, accepted):
    with pytest.raises(SpecError) as caught:
        Experiment.from_dict(spec([{"rule": "gd", "transforms": transforms}]), registry)
    message = str(caught.value)
    assert "\n" not in message and field in message and accepted in message, message


def test_the_transforms_field_round_trips_with_defaults_filled_in(registry):
    e = Experiment.from_dict(spec([{"rule": "gd", "transforms": ["lookahead", {"name": "clip_by_value"}]}]), registry)
    assert [t.to_dict() for t in e.entries[0].transforms] == [
        {"name": "lookahead", "sync_every": 5, "alpha": 0.5},
        {"name": "clip_by_value", "clip_value": 1.0},
    ]
    again = Experiment.from_dict(e.to_dict(), registry)
    assert again.entries[0].transforms == e.entries[0].transforms
    loose = Experiment.from_dict(e.to_dict(), strict=False)
    assert loose.entries[0].transforms == e.entries[0].transforms
    assert Experiment.from_toml(e.to_toml(), registry).to_dict() == e.to_dict()


# ---- a transform from a plugin --------------------------------------------------------------------------


class SignPlugin:
    @staticmethod
    @hookimpl
    def register_transforms(register):
        register(
            Transform(
                "sign",
                update=lambda g, s, p, h, t: (np.sign(g) * h["scale"], s),
                hyperparams=(HyperParam("scale", 1.0, 0.0, None),),
                summary="sign of g",
            )
        )
        register(Transform("nothing"))  # neither update nor after
        register(
            Transform("seeded", update=lambda g, s, p, h, t: (g, s), hyperparams=(HyperParam("seed", 0, kind="int"),))
        )  # the runs' seed is reserved
        register(Transform("broken", update=lambda g, s, p, h, t: (g[:, :1], s)))


def test_a_plugin_transform_is_registered_checked_and_isolated():
    registry = load_registry(entry_points=False, use_env=False, extra_plugins=[("signs", SignPlugin)])
    assert "sign" in registry.transforms and registry.origin("transform", "sign") == "registered signs"
    assert "nothing" not in registry.transforms and "seeded" not in registry.transforms
    assert any("'nothing'" in e and "update" in e for e in registry.errors)
    assert any("'seeded'" in e and "'seed'" in e for e in registry.errors)
    results = run(
        registry,
        spec(
            [
                {"rule": "gd", "learning_rate": 0.1, "transforms": [{"name": "sign", "scale": 0.5}]},
                {"rule": "gd", "learning_rate": 0.1, "transforms": ["broken"]},
                {"rule": "gd", "learning_rate": 0.1},
            ],
            steps=5,
            seeds=1,
        ),
    )
    status = results.runs.set_index("entry")["status"]
    assert status[1] == "failed" and status[0] != "failed" and status[2] != "failed"
    # named with its own file:line (the lambda above), not the chain's in core/transforms.py
    error = results.runs.set_index("entry")["error"][1]
    line = next(n for n, text in enumerate(open(__file__, encoding="utf-8"), 1) if 'Transform("broken"' in text)
    assert f"transform 'broken' ({__file__}:{line}) returned a gradient of shape (1, 1); expected (1, 17)" == error


def test_chain_rule_keeps_the_rules_name_and_splits_its_hyperparameters(registry):
    gd = registry.rule("gd")
    chained = chain_rule(gd, [registry.transform("clip_by_value")])
    assert chained.name == "gd"
    params = np.array([[1.0, -1.0]])
    h = {
        "weight_decay": np.zeros((1, 1)),
        **chain_hyper([(registry.transform("clip_by_value"), {"clip_value": 0.5})], 1, [0], np.float64),
    }
    state = chained.init(params, h)
    updates, state = chained.update(np.array([[3.0, -0.1]]), state, params, np.array([[0.1]]), h, 0)
    np.testing.assert_allclose(updates, [[-0.05, 0.01]], rtol=0, atol=1e-17)


def _chained_step(registry, names_and_values, rule="gd", grad=((3.0, -0.1),), params=((1.0, -1.0),), lr=0.1):
    transforms = [registry.transform(name) for name, _ in names_and_values]
    chained = chain_rule(registry.rule(rule), transforms)
    params = np.array(params)
    h = {
        **{h.name: np.full((1, 1), float(h.default)) for h in registry.rule(rule).hyperparams},
        **chain_hyper([(t, v) for t, (_, v) in zip(transforms, names_and_values)], 1, [0], np.float64),
    }
    state = chained.init(params, h)
    return chained.update(np.array(grad), state, params, np.array([[lr]]), h, 0)[0]


def test_transforms_apply_in_the_entrys_order_as_optax_chain():
    # optax.chain(T1, T2)(g) = T2(T1(g)): clipping then L2 is clip(g) + λθ, L2 then clipping clip(g + λθ)
    registry = load_registry(entry_points=False, use_env=False)
    g, theta, c, lam, lr = np.array([3.0, -0.1]), np.array([1.0, -1.0]), 0.5, 2.0, 0.1
    clip_then_l2 = _chained_step(registry, [("clip_by_value", {"clip_value": c}), ("weight_decay_l2", {"decay": lam})])
    l2_then_clip = _chained_step(registry, [("weight_decay_l2", {"decay": lam}), ("clip_by_value", {"clip_value": c})])
    np.testing.assert_allclose(clip_then_l2[0], -lr * (np.clip(g, -c, c) + lam * theta), rtol=1e-15)
    np.testing.assert_allclose(l2_then_clip[0], -lr * np.clip(g + lam * theta, -c, c), rtol=1e-15)
    assert not np.allclose(clip_then_l2, l2_then_clip)
    # a global-norm clip after L2 sees the decayed gradient's norm, before it the raw one
    norm_first = _chained_step(registry, [("clip_global_norm", {"max_norm": 1.0}), ("weight_decay_l2", {"decay": lam})])
    raw = g * min(1.0, 1.0 / (np.linalg.norm(g) + 1e-6))
    np.testing.assert_allclose(norm_first[0], -lr * (raw + lam * theta), rtol=1e-15)


# ---- what the docs and the CLI show --------------------------------------------------------------------


def test_the_docs_transform_example_registers_and_runs():
    import re
    import types
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## Write a gradient transform", 1)[1]
    # the page's sample is an examples/ file it includes (tests/test_docs.py refuses inline ones)
    included = re.search(r'```python\n--8<-- "([^"]+)"\n```', section).group(1)
    code = (root / included).read_text(encoding="utf-8")
    module = types.ModuleType("docs_transform_example")
    exec(compile(code, included, "exec"), module.__dict__)
    registry = load_registry(entry_points=False, use_env=False, extra_plugins=[("docs", module)])
    assert registry.errors == [] and {"scale", "cap_step"} <= set(registry.transforms)
    results = run(
        registry,
        spec(
            [
                {
                    "rule": "gd",
                    "learning_rate": 0.5,
                    "transforms": [{"name": "scale", "scale": 2.0}, {"name": "cap_step", "max_step": 0.01}],
                }
            ],
            steps=5,
        ),
    )
    steps = results.metric("step_size")[:, :5]
    assert np.all(steps <= 0.01 * (1 + 1e-12)) and np.all(steps > 0)


def test_docs_table_and_cli_list_every_transform(registry, capsys):
    import importlib.util
    from pathlib import Path

    from descentlab.cli import main

    path = Path(__file__).resolve().parents[2] / "docs" / "hooks.py"
    loaded = importlib.util.spec_from_file_location("docs_hooks_transforms", path)
    hooks = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(hooks)
    table = hooks.render("<!-- generated: transforms-table -->", registry)
    assert {line.split("`")[1] for line in table.splitlines()[2:]} == set(registry.transforms)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    listed = out.split("Gradient transforms:", 1)[1]
    for name, transform in registry.transforms.items():
        assert f"  {name}  [built-in]" in listed
        for h in transform.hyperparams:
            assert f"{h.name}=" in listed


def _rules_with_weight_decay(registry, decoupled: bool):
    """Built-in rules whose weight_decay is L2 (its help says "L2 penalty") or, with ``decoupled``, decoupled."""
    names = []
    for name, rule in registry.rules.items():
        decay = next((h for h in rule.hyperparams if h.name == "weight_decay"), None)
        if decay is not None and decay.help.startswith("L2 penalty") != decoupled:
            names.append(name)
    return sorted(names)


# the decoupled decay of schedule-free AdamW acts on z (z ← z − αλy), not on the step the wrapper sees
DECOUPLED_ELSEWHERE = {"adamw_schedule_free"}
# Lion and signSGD compute −α(sign + λθ), the wrapper −α·sign − αλθ: one rounding apart. Every other
# pair does the same operations in the same order as the rule's own option: equal to the last bit.
ONE_ROUNDING_APART = {"lion", "signsgd"}


def _equal_runs(registry, with_option, with_transform, rows, bitwise):
    results = run(registry, spec([with_option, with_transform], steps=25, seeds=2))
    for metric in ("loss", "step_size"):
        a, b = results.metric(metric)[:rows], results.metric(metric)[rows:]
        if bitwise:
            np.testing.assert_array_equal(a, b, err_msg=metric)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=metric)
    assert results.runs.diverged_at.isna().all() and not results.runs.error.astype(bool).any()


def test_every_rule_with_a_weight_decay_is_one_of_the_two_kinds(registry):
    l2, decoupled = _rules_with_weight_decay(registry, False), _rules_with_weight_decay(registry, True)
    assert {"gd", "momentum", "adam", "asgd", "sgd_schedule_free"} <= set(l2) and {
        "adamw",
        "lion",
        "signsgd",
        "adafactor",
    } <= set(decoupled)
    assert not set(l2) & set(decoupled)


@pytest.mark.parametrize(
    "name",
    [
        "gd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamax",
        "nadam",
        "radam",
        "adadelta",
        "asgd",
        "sgd_schedule_free",
    ],
)
def test_l2_transform_then_rule_is_the_rules_own_l2_weight_decay(registry, name):
    # g + λθ before the rule is what every rule's own L2 weight_decay computes (PyTorch's weight_decay)
    assert name in _rules_with_weight_decay(registry, False)
    lr = [registry.rules[name].default_learning_rate * k for k in (1.0, 3.0)]
    _equal_runs(
        registry,
        {"rule": name, "learning_rate": lr, "weight_decay": 0.05},
        {
            "rule": name,
            "learning_rate": lr,
            "weight_decay": 0.0,
            "transforms": [{"name": "weight_decay_l2", "decay": 0.05}],
        },
        rows=4,
        bitwise=True,
    )


@pytest.mark.parametrize(
    "name, plain", [("adamw", "adam"), ("lion", "lion"), ("signsgd", "signsgd"), ("adafactor", "adafactor")]
)
def test_decoupled_wrapper_after_rule_is_the_rules_own_decoupled_weight_decay(registry, name, plain):
    # θ ← θ − α_t λθ beside the rule's step: AdamW = Adam + wrapper, and Lion, signSGD and Adafactor's own λ
    assert name in _rules_with_weight_decay(registry, True) and name not in DECOUPLED_ELSEWHERE
    lr = [registry.rules[name].default_learning_rate * k for k in (1.0, 3.0)]
    _equal_runs(
        registry,
        {"rule": name, "learning_rate": lr, "weight_decay": 0.2},
        {
            "rule": plain,
            "learning_rate": lr,
            "weight_decay": 0.0,
            "transforms": [{"name": "weight_decay_decoupled", "decay": 0.2}],
        },
        rows=4,
        bitwise=name not in ONE_ROUNDING_APART,
    )
