"""Built-in problems: registration, seeded data and splits, standardisation, targets, real data, gradients."""

import numpy as np
import pytest

from descentlab import SupervisedInstance, check_grads, load_registry
from descentlab import datasets

ALL_PROBLEMS = [
    "quadratic",
    "rosenbrock",
    "himmelblau",
    "beale",
    "linear_regression",
    "xor",
    "moons",
    "circles",
    "spirals",
    "blobs",
    "sine",
    "digits",
    "iris",
    "breast_cancer",
    "diabetes",
    "csv",
]
GENERATED = ["xor", "moons", "circles", "spirals", "blobs", "sine"]


@pytest.fixture(scope="module")
def registry():
    return load_registry(entry_points=False, use_env=False)


def build(registry, name, **overrides):
    problem = registry.problem(name)
    declared = {h.name: h for h in problem.settings}
    settings = {n: h.default for n, h in declared.items()}
    settings.update({k: declared[k].check(v) for k, v in overrides.items()})
    return problem.build(settings)


def test_every_problem_is_registered_with_valid_settings(registry):
    assert not registry.errors
    assert sorted(registry.problems) == sorted(ALL_PROBLEMS)
    for name in ALL_PROBLEMS:
        problem = registry.problem(name)
        assert registry.origin("problem", name) == "built-in"
        names = [h.name for h in problem.settings]
        if problem.kind == "landscape":
            assert {"start_x", "start_y", "start_spread"} <= set(names)
        elif name not in ("linear_regression",):
            assert {"hidden", "activation", "init", "seed", "test_fraction"} <= set(names)


@pytest.mark.parametrize("name", [n for n in ALL_PROBLEMS if n != "csv"])
def test_every_problem_gradient_passes_the_checker(registry, name):
    overrides = {"samples": 150} if name == "digits" else {}
    instance = build(registry, name, **overrides)
    params = instance.init_params([0, 1, 2])
    params = params + 0.05 * np.random.default_rng(0).standard_normal(params.shape)
    loss, grad = instance.loss_and_grad(params)
    assert loss.shape == (3,) and grad.shape == params.shape and np.isfinite(loss).all()
    check_grads(instance.loss_and_grad, params)
    if instance.n_train:
        batch = np.random.default_rng(1).integers(0, instance.n_train, (3, 16))
        check_grads(lambda p: instance.loss_and_grad(p, batch), params)


@pytest.mark.parametrize("name", GENERATED + ["linear_regression"])
def test_same_settings_give_identical_data_and_weights(registry, name):
    a, b = build(registry, name), build(registry, name)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(a.dataset, field).tobytes() == getattr(b.dataset, field).tobytes()
    assert a.init_params([0, 3]).tobytes() == b.init_params([0, 3]).tobytes()
    other = build(registry, name, seed=1)
    assert not np.array_equal(a.dataset.x_train[:5], other.dataset.x_train[:5])


def test_split_is_disjoint_complete_and_seeded():
    train, test = datasets.split_indices(100, 0.25, seed=3)
    assert len(test) == 25 and len(train) == 75
    assert not set(train) & set(test) and sorted(set(train) | set(test)) == list(range(100))
    again = datasets.split_indices(100, 0.25, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, datasets.split_indices(100, 0.25, seed=4)[1])
    assert len(datasets.split_indices(5, 0.9, seed=0)[0]) >= 1  # never an empty training set
    assert len(datasets.split_indices(10, 0.0, seed=0)[1]) == 0


def test_problem_split_keeps_train_and_test_points_apart(registry):
    instance = build(registry, "moons", samples=120, test_fraction=0.25)
    d = instance.dataset
    assert len(d.x_train) == 90 and len(d.x_test) == 30
    train_rows = {tuple(r) for r in d.x_train}
    assert not any(tuple(r) in train_rows for r in d.x_test)


def test_standardisation_uses_training_statistics_only():
    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, (200, 3)) * [1.0, 10.0, 0.1]
    labels = rng.integers(0, 2, 200)
    d = datasets.make_dataset(x, labels, "classification", test_fraction=0.3, seed=2, standardize_inputs=True)
    train, test = datasets.split_indices(200, 0.3, seed=2)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)  # independent: raw training rows only
    np.testing.assert_allclose(d.x_train, (x[train] - mean) / std, rtol=1e-12)
    np.testing.assert_allclose(d.x_test, (x[test] - mean) / std, rtol=1e-12)
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0.0, atol=1e-12)
    assert np.abs(d.x_test.mean(axis=0)).max() > 1e-3  # test statistics were not used


def test_constant_column_is_centred_not_divided_by_zero():
    x = np.column_stack([np.ones(10), np.arange(10.0)])
    out = datasets.standardize(x)[0]
    assert np.isfinite(out).all() and (out[:, 0] == 0).all()


def test_targets_and_losses_fit_the_task(registry):
    moons = build(registry, "moons")
    assert moons.dataset.y_train.shape[1] == 1 and set(np.unique(moons.dataset.y_train)) == {0.0, 1.0}
    assert moons.model.loss.name == "bce_logits"
    blobs = build(registry, "blobs", classes=4)
    assert blobs.dataset.y_train.shape[1] == 4 and blobs.model.loss.name == "softmax_ce"
    np.testing.assert_array_equal(blobs.dataset.y_train.sum(axis=1), 1.0)
    assert blobs.model.sizes == [2, 16, 4]
    sine = build(registry, "sine", hidden=[5, 7], activation="relu")
    assert sine.model.loss.name == "mse" and sine.model.sizes == [1, 5, 7, 1] and sine.kind == "regression"
    assert sine.model.init == "he_uniform"
    assert sine.evaluate(sine.init_params([0])).keys() == {"test_loss"}
    assert set(moons.evaluate(moons.init_params([0]))) == {"test_loss", "test_accuracy"}


def test_generators_draw_the_shapes_they_promise():
    rng = np.random.default_rng(0)
    x, labels = datasets.circles(200, 0.0, rng, factor=0.3)
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), np.where(labels == 0, 1.0, 0.3), rtol=1e-12)
    x, labels = datasets.moons(100, 0.0, rng)
    centre = np.where(labels[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    np.testing.assert_allclose(np.linalg.norm(x - centre, axis=1), 1.0, rtol=1e-12)
    x, labels = datasets.xor(100, 0.0, rng)
    np.testing.assert_array_equal(labels, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(int))
    x, labels = datasets.spirals(300, 0.0, rng)
    assert np.hypot(x[:, 0], x[:, 1]).max() <= 1.0 and np.bincount(labels).tolist() == [150, 150]
    x, y = datasets.sine(50, 0.0, rng)
    np.testing.assert_allclose(y, np.sin(x), rtol=1e-15)
    x, y = datasets.line(50, 0.0, rng, slope=3.0, intercept=-2.0)
    np.testing.assert_allclose(y, 3.0 * x - 2.0, rtol=1e-14)
    x, labels = datasets.blobs(90, 0.0, rng, classes=3, spread=2.0)
    assert np.bincount(labels).tolist() == [30, 30, 30]
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), 2.0, rtol=1e-14)


@pytest.mark.parametrize(
    "name, n, d, k",
    [("digits", 1797, 64, 10), ("iris", 150, 4, 3), ("breast_cancer", 569, 30, 1), ("diabetes", 442, 10, 1)],
)
def test_scikit_learn_sets_load_offline_with_the_right_shapes(registry, name, n, d, k):
    instance = build(registry, name)
    data = instance.dataset
    assert len(data.x_train) + len(data.x_test) == n
    assert len(data.x_test) == round(0.2 * n)
    assert data.x_train.shape[1] == d and data.y_train.shape[1] == k
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-10)
    if name == "diabetes":
        assert instance.model.loss.name == "mse"
        np.testing.assert_allclose([data.y_train.mean(), data.y_train.std()], [0.0, 1.0], atol=1e-10)
    else:
        assert instance.kind == "classification" and data.class_names
    subset = build(registry, name, samples=60)
    assert len(subset.dataset.x_train) + len(subset.dataset.x_test) == 60


def test_dtype_follows_the_params(registry):
    instance = build(registry, "spirals")
    assert isinstance(instance, SupervisedInstance)
    params = instance.init_params([0], dtype=np.float32)
    loss, grad = instance.loss_and_grad(params)
    assert loss.dtype == grad.dtype == np.float32
    assert instance.predict(params, np.zeros((4, 2))).shape == (1, 4, 1)


def test_problem_facts_for_records(registry):
    info = build(registry, "iris").describe()
    assert info["n_features"] == 4 and info["n_outputs"] == 3 and info["kind"] == "classification"
    assert [row["name"] for row in info["layout"]] == ["W1", "b1", "W2", "b2"]
