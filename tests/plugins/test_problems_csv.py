"""The CSV problem: a user's file becomes a split, standardised dataset; every bad file gets one clear line."""

import numpy as np
import pytest

from descentlab import SpecError, check_grads, load_registry
from descentlab.datasets import split_indices


@pytest.fixture(scope="module")
def registry():
    return load_registry(entry_points=False, use_env=False)


def build(registry, **overrides):
    problem = registry.problem("csv")
    declared = {h.name: h for h in problem.settings}
    settings = {n: h.default for n, h in declared.items()}
    settings.update({k: declared[k].check(v) for k, v in overrides.items()})
    return problem.build(settings)


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def one_line_error(registry, **settings) -> str:
    with pytest.raises(SpecError) as caught:
        build(registry, **settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_regression_csv_is_split_and_standardised_with_training_statistics(registry, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (40, 2))
    y = 2 * x[:, 0] - x[:, 1] + 1
    rows = "\n".join(f"{a},{b},{t}" for a, b, t in zip(x[:, 0], x[:, 1], y))
    path = write(tmp_path, "size, age ,price\n" + rows + "\n")
    instance = build(registry, path=path, target="price", task="regression", test_fraction=0.25, seed=4)
    d = instance.dataset
    assert d.feature_names == ["size", "age"] and instance.model.loss.name == "mse"
    train, test = split_indices(40, 0.25, seed=4)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    np.testing.assert_allclose(d.x_train, (x[train] - mean) / std, rtol=1e-10)
    np.testing.assert_allclose(d.x_test, (x[test] - mean) / std, rtol=1e-10)
    y_mean, y_std = y[train].mean(), y[train].std()
    np.testing.assert_allclose(d.y_test[:, 0], (y[test] - y_mean) / y_std, rtol=1e-10)
    check_grads(instance.loss_and_grad, instance.init_params([0, 1]))


def test_text_labels_become_classes(registry, tmp_path):
    lines = ["a,b,species"] + [f"{i},{i % 3},{['setosa', 'virginica', 'versicolor'][i % 3]}" for i in range(30)]
    path = write(tmp_path, "\n".join(lines))
    instance = build(registry, path=path, target="species", task="classification", hidden=[4])
    assert instance.dataset.class_names == ["setosa", "versicolor", "virginica"]
    assert instance.dataset.y_train.shape[1] == 3 and instance.model.loss.name == "softmax_ce"
    two = write(tmp_path, "\n".join(["x,label"] + [f"{i},{i % 2}" for i in range(10)]), "two.csv")
    binary = build(registry, path=two, target="label", task="classification")
    assert binary.dataset.y_train.shape[1] == 1 and binary.model.loss.name == "bce_logits"


def test_missing_file(registry, tmp_path):
    missing = str(tmp_path / "nope.csv")
    message = one_line_error(registry, path=missing, target="y")
    assert "nope.csv" in message and "not found" in message


def test_missing_column_names_the_file_and_its_column_count_not_its_header(registry, tmp_path):
    # the header is the file's text: a message that quoted it would show any file's first line
    path = write(tmp_path, "height,weight\n1,2\n3,4\n")
    message = one_line_error(registry, path=path, target="mass")
    assert "'mass'" in message and "data.csv" in message and "2 column" in message and "problem.target" in message
    assert "height" not in message and "weight" not in message


def test_non_numeric_cell_names_line_and_column(registry, tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,3\n4,five,6\n7,8,9\n")
    message = one_line_error(registry, path=path, target="y")
    assert "line 3" in message and "column 2" in message and "a number" in message
    assert "five" not in message and "'b'" not in message


def test_empty_cell_and_non_numeric_regression_target(registry, tmp_path):
    path = write(tmp_path, "a,y\n1,2\n,3\n")
    message = one_line_error(registry, path=path, target="y")
    assert "line 3" in message and "empty" in message
    path = write(tmp_path, "a,y\n1,2\n2,kitten\n", "target.csv")
    message = one_line_error(registry, path=path, target="y", task="regression")
    assert "line 3" in message and "'y'" in message and "column 2" in message and "kitten" not in message
    assert 'task = "classification"' in message  # text labels are a classification target


@pytest.mark.parametrize(
    "separator, decimal",
    [(";", ","), (";", "."), ("\t", "."), ("|", ".")],
    ids=["semicolon-decimal-comma", "semicolon", "tab", "pipe"],
)
def test_other_separators_and_decimal_commas_read_as_the_comma_file(registry, tmp_path, separator, decimal):
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(0, 2, (24, 2)), 3)
    y = np.round(x[:, 0] - 2 * x[:, 1], 3)

    def text(sep, dec):
        cells = [[f"{v}".replace(".", dec) for v in row] for row in np.column_stack([x, y])]
        return "\n".join([sep.join(["a", "b", "y"])] + [sep.join(row) for row in cells])

    reference = build(registry, path=write(tmp_path, text(",", ".")), target="y", task="regression").dataset
    other = build(
        registry, path=write(tmp_path, text(separator, decimal), "other.csv"), target="y", task="regression"
    ).dataset
    assert other.feature_names == ["a", "b"]
    for name in ("x_train", "x_test", "y_train", "y_test"):
        np.testing.assert_array_equal(getattr(other, name), getattr(reference, name))


def test_a_header_naming_a_column_twice_is_one_line_without_the_name(registry, tmp_path):
    path = write(tmp_path, "secret,y,secret\n1,2,3\n4,5,6\n")
    message = one_line_error(registry, path=path, target="y")
    assert "line 1" in message and "columns 1 and 3" in message and "secret" not in message


def test_empty_file_and_header_only(registry, tmp_path):
    message = one_line_error(registry, path=write(tmp_path, ""), target="y")
    assert "data.csv" in message and "empty" in message
    message = one_line_error(registry, path=write(tmp_path, "a,y\n", "header.csv"), target="y")
    assert "header.csv" in message and "no data rows" in message


def test_ragged_row_and_single_class(registry, tmp_path):
    message = one_line_error(registry, path=write(tmp_path, "a,b,y\n1,2,3\n4,5\n"), target="y")
    assert "line 3" in message and "2 cells" in message
    path = write(tmp_path, "a,y\n1,xylophone\n2,xylophone\n", "one.csv")
    message = one_line_error(registry, path=path, target="y", task="classification")
    assert "two classes" in message and "xylophone" not in message  # a label is the file's text


def test_no_path_given(registry):
    message = one_line_error(registry, target="y")
    assert "problem.path" in message
