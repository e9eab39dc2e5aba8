"""Seeded toy datasets, scikit-learn's bundled real datasets, a CSV loader, and the train/test split.

Generators take ``(samples, noise, rng)`` and return inputs ``(N, d)`` with either class labels
``(N,)`` (integers 0..k-1) or regression targets ``(N, 1)``. :func:`make_dataset` turns them into a
:class:`~descentlab.problem.Dataset`: seeded split, optional standardisation with training
statistics only, and targets in the form the loss expects (``(N, 1)`` 0/1 for two classes and
``bce_logits``, one-hot ``(N, k)`` for more and ``softmax_ce``).
"""

from __future__ import annotations

import csv
import io
import math
import stat
from pathlib import Path

import numpy as np

from .errors import SpecError, one_line
from .problem import Dataset

__all__ = [
    "xor",
    "moons",
    "circles",
    "spirals",
    "blobs",
    "sine",
    "line",
    "GENERATORS",
    "split_indices",
    "standardize",
    "encode_targets",
    "loss_for",
    "make_dataset",
    "generated",
    "SKLEARN_SETS",
    "load_sklearn",
    "read_csv",
    "MAX_RAW_MAGNITUDE",
    "OTHER_DELIMITERS",
    "load_csv",
]

# -- generated datasets ------------------------------------------------------------------------


def xor(samples: int, noise: float, rng: np.random.Generator):
    """Points uniform in [-1, 1]², class 1 where x·y < 0 (the XOR of the signs); noise jitters inputs."""
    x = rng.uniform(-1.0, 1.0, (samples, 2))
    labels = (x[:, 0] * x[:, 1] < 0).astype(np.int64)
    return x + noise * rng.standard_normal(x.shape), labels


def moons(samples: int, noise: float, rng: np.random.Generator):
    """Two interleaving half circles (as scikit-learn's make_moons), Gaussian noise of std ``noise``."""
    n_top = samples // 2
    n_bottom = samples - n_top
    t_top = rng.uniform(0.0, math.pi, n_top)
    t_bottom = rng.uniform(0.0, math.pi, n_bottom)
    top = np.column_stack([np.cos(t_top), np.sin(t_top)])
    bottom = np.column_stack([1.0 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)])
    x = np.vstack([top, bottom])
    labels = np.concatenate([np.zeros(n_top, np.int64), np.ones(n_bottom, np.int64)])
    return x + noise * rng.standard_normal(x.shape), labels


def circles(samples: int, noise: float, rng: np.random.Generator, factor: float = 0.5):
    """A circle of radius 1 (class 0) around one of radius ``factor`` (class 1), plus noise."""
    n_outer = samples // 2
    n_inner = samples - n_outer
    t = rng.uniform(0.0, 2.0 * math.pi, samples)
    radius = np.concatenate([np.ones(n_outer), np.full(n_inner, factor)])
    x = np.column_stack([radius * np.cos(t), radius * np.sin(t)])
    labels = np.concatenate([np.zeros(n_outer, np.int64), np.ones(n_inner, np.int64)])
    return x + noise * rng.standard_normal(x.shape), labels


def spirals(samples: int, noise: float, rng: np.random.Generator, turns: float = 1.75):
    """Two interleaved spirals ``r = t``, the second rotated by π; radius up to 1, ``turns`` turns."""
    n_first = samples // 2
    labels = np.concatenate([np.zeros(n_first, np.int64), np.ones(samples - n_first, np.int64)])
    t = np.sqrt(rng.uniform(0.0, 1.0, samples))  # sqrt: even density along the arm
    angle = 2.0 * math.pi * turns * t + math.pi * labels
    x = np.column_stack([t * np.cos(angle), t * np.sin(angle)])
    return x + noise * rng.standard_normal(x.shape), labels


def blobs(samples: int, noise: float, rng: np.random.Generator, classes: int = 3, spread: float = 2.0):
    """``classes`` Gaussian blobs of std ``noise`` centred evenly on a circle of radius ``spread``."""
    labels = np.arange(samples) % classes
    angle = 2.0 * math.pi * labels / classes
    centres = spread * np.column_stack([np.cos(angle), np.sin(angle)])
    return centres + noise * rng.standard_normal((samples, 2)), labels.astype(np.int64)


def sine(samples: int, noise: float, rng: np.random.Generator, periods: float = 1.0):
    """Regression: x uniform in [-π·periods, π·periods], y = sin x + noise·N(0, 1), target (N, 1)."""
    x = rng.uniform(-math.pi * periods, math.pi * periods, (samples, 1))
    return x, np.sin(x) + noise * rng.standard_normal((samples, 1))


def line(
    samples: int,
    noise: float,
    rng: np.random.Generator,
    slope: float = 2.0,
    intercept: float = -1.0,
    x_low: float = 0.0,
    x_high: float = 2.0,
):
    """Regression: x uniform in [x_low, x_high], y = slope·x + intercept + noise·N(0, 1)."""
    x = rng.uniform(x_low, x_high, (samples, 1))
    return x, slope * x + intercept + noise * rng.standard_normal((samples, 1))


GENERATORS = {
    "xor": xor,
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "blobs": blobs,
    "sine": sine,
    "line": line,
}

# -- split, standardisation, targets ---------------------------------------------------------------


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint ``(train, test)`` index arrays from a seeded permutation; at least one training sample.

    The test set has ``round(test_fraction · n)`` samples. The permutation comes from its own
    generator (``default_rng([seed, 1])``) so it does not depend on how the data were drawn.
    """
    n_test = min(int(round(test_fraction * n)), n - 1)
    order = np.random.default_rng([int(seed), 1]).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def standardize(train: np.ndarray, *others: np.ndarray):
    """Shift and scale every column to mean 0, std 1 using the TRAINING statistics only.

    Constant columns are only centred (std taken as 1). Returns ``(train, *others, mean, std)``.
    Where that overflows (values near ±1e308: the sum of squares is beyond the float range), the
    column's statistics are computed on it divided by its largest magnitude instead; a statistic
    that is itself beyond the float range stays non-finite, which :func:`make_dataset` refuses.
    """
    train = np.asarray(train, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mean = train.mean(axis=0)
        std = train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        out = [(train - mean) / std, *[(np.asarray(o, dtype=np.float64) - mean) / std for o in others]]
        bad = ~(np.isfinite(mean) & np.isfinite(std))
        for a in out:
            bad |= ~np.isfinite(a).all(axis=0)
        if bad.any():
            scale = np.max(np.abs(train), axis=0) if len(train) else np.ones(train.shape[1:])
            scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
            m = (train / scale).mean(axis=0)
            s = (train / scale).std(axis=0)
            s = np.where(s > 0, s, 1.0)
            for k, a in enumerate([train, *others]):
                fixed = (np.asarray(a, dtype=np.float64) / scale - m) / s
                out[k] = np.where(bad, fixed, out[k])
            mean = np.where(bad, m * scale, mean)
            std = np.where(bad, np.where((train / scale).std(axis=0) > 0, s * scale, 1.0), std)
    return (*out, mean, std)


def _check_finite_columns(labels, *arrays) -> None:
    """Refuse, naming the first such column by its label, data that are not finite (after standardisation)."""
    for j in range(arrays[0].shape[1] if arrays[0].ndim == 2 else 0):
        if not all(np.isfinite(a[:, j]).all() for a in arrays):
            name = labels[j] if j < len(labels) else f"column {j + 1}"
            raw = [a[:, j] for a in arrays[2:]]  # the raw columns, when given, for the message
            biggest = max((float(np.max(np.abs(r))) for r in raw if len(r)), default=float("nan"))
            raise SpecError(
                name,
                f"values up to {biggest:.3g}" if raw else "non-finite values",
                "values whose mean and spread fit in a float64 (|value| well below 1e308)",
                hint="rescale the column, e.g. change its units",
            )


def encode_targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(N, 1)`` floats 0/1 for two classes (bce_logits), one-hot ``(N, k)`` for more (softmax_ce)."""
    labels = np.asarray(labels, dtype=np.int64)
    if n_classes == 2:
        return labels.reshape(-1, 1).astype(np.float64)
    return np.eye(n_classes)[labels]


def loss_for(task: str, n_outputs_or_classes: int) -> str:
    """The loss that fits a task: mse for regression, bce_logits for 2 classes, softmax_ce for more."""
    if task == "regression":
        return "mse"
    return "bce_logits" if n_outputs_or_classes == 2 else "softmax_ce"


def make_dataset(
    x,
    y,
    task: str,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize_inputs=False,
    standardize_target=False,
    n_classes: int | None = None,
    feature_names=(),
    class_names=(),
    column_labels=(),
):
    """Split ``x`` and ``y`` (labels for classification, ``(N, k)`` targets for regression) into a Dataset.

    Standardisation statistics (inputs, and regression targets when asked) come from the
    training split alone; they are kept in ``dataset.x_mean`` etc. for mapping new inputs.
    """
    x = np.asarray(x, dtype=np.float64)
    train, test = split_indices(len(x), test_fraction, seed)
    x_train, x_test = x[train], x[test]
    x_mean, x_std = np.zeros(x.shape[1]), np.ones(x.shape[1])
    names = list(feature_names) or [f"x{i + 1}" for i in range(x.shape[1])]
    if standardize_inputs:
        x_train, x_test, x_mean, x_std = standardize(x_train, x_test)
        # column_labels: how a message names a column (a user's file: by position, not its header text)
        message_labels = list(column_labels) or [f"input column {name!r}" for name in names]
        _check_finite_columns(message_labels, np.vstack([x_train, x_test]), np.vstack([x_mean, x_std]), x)
    if task == "classification":
        labels = np.asarray(y, dtype=np.int64).reshape(-1)
        k = int(n_classes if n_classes is not None else labels.max() + 1)
        targets = encode_targets(labels, k)
        class_names = list(class_names) or [str(c) for c in range(k)]
    else:
        targets = np.asarray(y, dtype=np.float64).reshape(len(x), -1)
    y_train, y_test = targets[train], targets[test]
    y_mean, y_std = np.zeros(targets.shape[1]), np.ones(targets.shape[1])
    if task == "regression" and standardize_target:
        y_train, y_test, y_mean, y_std = standardize(y_train, y_test)
        _check_finite_columns(
            [
                f"regression column {f'target {k + 1}' if targets.shape[1] > 1 else 'target'!r}"
                for k in range(targets.shape[1])
            ],
            np.vstack([y_train, y_test]),
            np.vstack([y_mean, y_std]),
            targets,
        )
    dataset = Dataset(
        np.ascontiguousarray(x_train),
        np.ascontiguousarray(y_train),
        np.ascontiguousarray(x_test),
        np.ascontiguousarray(y_test),
        task,
        feature_names=list(feature_names) or [f"x{i + 1}" for i in range(x.shape[1])],
        class_names=list(class_names) if task == "classification" else [],
    )
    dataset.x_mean, dataset.x_std, dataset.y_mean, dataset.y_std = x_mean, x_std, y_mean, y_std
    dataset.train_index, dataset.test_index = train, test
    return dataset


def generated(
    name: str,
    *,
    samples: int,
    noise: float,
    seed: int,
    test_fraction: float = 0.2,
    standardize_inputs: bool = False,
    **options,
) -> Dataset:
    """A Dataset from one of :data:`GENERATORS`; the same arguments always give the same data."""
    if not float(noise) <= MAX_RAW_MAGNITUDE:
        # beyond it the points (noise x a normal draw) overflow to inf in generation or the first
        # forward pass: refused here, in one line, instead of a RuntimeWarning and a silent divergence
        raise SpecError("problem.noise", noise, f"a number in [0, {MAX_RAW_MAGNITUDE:g}]")
    rng = np.random.default_rng([int(seed), 0])
    with np.errstate(all="ignore"):  # an overflow is refused below, in one line
        x, y = GENERATORS[name](int(samples), float(noise), rng, **options)
    task = "regression" if name in ("sine", "line") else "classification"
    values = [np.asarray(x, dtype=np.float64)] + ([np.asarray(y, dtype=np.float64)] if task == "regression" else [])
    biggest = max(float(np.max(np.abs(v))) if v.size else 0.0 for v in values)
    if not biggest <= MAX_RAW_MAGNITUDE:  # NaN too: the settings, not one of them, put the points there
        raise SpecError(
            "problem",
            _Described(f"{name} points up to {biggest:.3g}"),
            f"settings whose points stay within ±{MAX_RAW_MAGNITUDE:g}",
            hint="lower the noise, spread, slope, intercept or x range",
        )
    n_classes = options.get("classes", 2) if task == "classification" else None
    return make_dataset(
        x, y, task, test_fraction=test_fraction, seed=seed, standardize_inputs=standardize_inputs, n_classes=n_classes
    )


# -- real data shipped with scikit-learn (no network) -----------------------------------------------

SKLEARN_SETS = {
    "digits": "classification",
    "iris": "classification",
    "breast_cancer": "classification",
    "diabetes": "regression",
}


def load_sklearn(
    name: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    samples: int = 0,
    standardize_inputs: bool = True,
    standardize_target: bool = True,
) -> Dataset:
    """One of scikit-learn's bundled sets (read from the installed package, never downloaded).

    ``samples`` > 0 keeps a seeded random subset of that many rows. Regression targets are
    standardised with training statistics (``standardize_target``) so the loss starts near 1.
    """
    if name not in SKLEARN_SETS:
        raise SpecError("problem", name, "one of " + ", ".join(SKLEARN_SETS))
    from .extras import require

    # imported here: only these problems need scikit-learn, which the [datasets] extra installs
    sklearn_datasets = require("sklearn.datasets", f"the {name} problem", "datasets")
    bunch = getattr(sklearn_datasets, f"load_{name}")()
    x, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    if samples and samples < len(x):
        keep = np.sort(np.random.default_rng([int(seed), 2]).permutation(len(x))[:samples])
        x, y = x[keep], y[keep]
    task = SKLEARN_SETS[name]
    feature_names = [str(f) for f in getattr(bunch, "feature_names", [])] or []
    if task == "classification":
        class_names = [str(c) for c in getattr(bunch, "target_names", [])]
        return make_dataset(
            x,
            y,
            task,
            test_fraction=test_fraction,
            seed=seed,
            standardize_inputs=standardize_inputs,
            n_classes=len(class_names),
            feature_names=feature_names,
            class_names=class_names,
        )
    return make_dataset(
        x,
        y.reshape(-1, 1),
        task,
        test_fraction=test_fraction,
        seed=seed,
        standardize_inputs=standardize_inputs,
        standardize_target=standardize_target,
        feature_names=feature_names,
    )


# -- a user's CSV file -----------------------------------------------------------------------------


def _number(cell: str, decimal_comma: bool = False) -> float:
    if decimal_comma and cell.count(",") == 1 and "." not in cell:
        cell = cell.replace(",", ".")  # 1,5 in a ;-separated file (a spreadsheet's export in many locales)
    value = float(cell)  # raises ValueError for text and empty cells
    if not math.isfinite(value):
        raise ValueError(cell)
    return value


# Separators read besides the comma, tried in this order when the header row has no comma.
OTHER_DELIMITERS = (";", "\t", "|")


def _delimiter(text: str) -> str:
    """The header row's separator: a comma, else the first of OTHER_DELIMITERS it contains."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    if "," in header:
        return ","
    return next((d for d in OTHER_DELIMITERS if d in header), ",")


class _Described(str):
    """A value SpecError shows as it is, not quoted: what a cell held, described, never its text."""

    def __repr__(self) -> str:
        return str(self)


def read_csv(path, target: str, task: str):
    """``(x (N, d), target column as str list, feature names)`` from a CSV with a header row.

    Every failure is a one-line SpecError naming the file, and the line and column number where
    relevant, and what was expected. No message quotes the file's text (not a header name, not a
    cell): a path typed into a shared dashboard must not turn an error into a way to read a file.
    """
    where = "problem.path"
    file = Path(str(path)).expanduser()
    if not str(path).strip():
        raise SpecError(where, str(path), "the path of a CSV file")
    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        raise SpecError(where, str(path), "an existing CSV file", hint="file not found") from None
    except (OSError, ValueError) as error:  # permission, a too-long name, a NUL byte in the path
        raise SpecError(where, str(path), "a readable CSV file", hint=type(error).__name__) from None
    if stat.S_ISDIR(mode):
        raise SpecError(where, str(path), "a CSV file", hint="it is a directory")
    if not stat.S_ISREG(mode):
        # /dev/zero would be read forever, a FIFO blocks until someone writes to it
        raise SpecError(where, str(path), "a CSV file", hint="not a regular file")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(where, str(path), "a readable UTF-8 CSV file", hint=type(error).__name__) from None
    delimiter = _delimiter(text)
    decimal_comma = delimiter == ";"
    rows = []
    # A file object, not text.splitlines(): a quoted cell may hold a line break ("1<newline>2" read as
    # the number 12 when the lines were joined), and splitlines() also breaks at \x0c, \x1c, U+2028...
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    ended = 0  # the line the previous row ended on: a row is numbered by the line it starts on
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((ended + 1, row))
            ended = reader.line_num
    except csv.Error as error:  # e.g. a cell longer than csv's field limit (131072 characters)
        raise SpecError(
            f"{file.name} line {reader.line_num}",
            _Described("a row the CSV reader cannot read"),
            "rows of cells separated by " + repr(delimiter),
            hint=one_line(str(error)),  # csv's own words name the limit, never the file's text
        ) from None
    if not rows:
        raise SpecError(where, str(path), "a CSV file with a header row and data rows", hint="the file is empty")
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    if len(rows) == 1:
        raise SpecError(
            where,
            str(path),
            "a CSV file with a header row and data rows",
            hint="the file has a header but no data rows",
        )
    if target not in header:
        raise SpecError(
            "problem.target",
            target,
            f"the name of a column in the header row (line {header_line}) of {file.name}",
            hint=f"none of its {len(header)} column(s) has that name",
        )
    if len(header) < 2:
        raise SpecError(where, str(path), "a CSV file with at least one input column besides the target")
    for j, name in enumerate(header):
        if name in header[:j]:  # which column would "size" be? (the name itself is never repeated)
            raise SpecError(
                f"{file.name} line {header_line}",
                _Described(f"columns {header.index(name) + 1} and {j + 1} with the same name"),
                "a header row whose column names are all different",
            )
    t = header.index(target)
    features = [h for j, h in enumerate(header) if j != t]
    x = np.empty((len(rows) - 1, len(header) - 1))
    y = []
    for i, (line_number, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise SpecError(
                f"{file.name} line {line_number}",
                _Described(f"{len(row)} cells"),
                f"{len(header)} cells, as in the header",
            )
        column = 0
        for j, cell in enumerate(row):
            if j == t:
                if not cell.strip():
                    raise SpecError(
                        f"{file.name} line {line_number}, column {j + 1} (target {target!r})",
                        _Described("an empty cell"),
                        "a target value",
                    )
                y.append(cell.strip())
                continue
            try:
                x[i, column] = _number(cell.strip(), decimal_comma)
            except ValueError:
                raise SpecError(
                    f"{file.name} line {line_number}, column {j + 1}", _cell_description(cell), "a number"
                ) from None
            column += 1
    if task == "regression":
        numbers = []
        for (line_number, _), cell in zip(rows[1:], y):
            try:
                numbers.append(_number(cell, decimal_comma))
            except ValueError:
                raise SpecError(
                    f"{file.name} line {line_number}, column {t + 1} (target {target!r})",
                    _cell_description(cell),
                    'a number (task is regression; for class labels, set task = "classification")',
                ) from None
        y = [repr(value) for value in numbers]  # as the file meant them (1,5 in a ;-file is 1.5): exact
    # how messages name each input column: by file and position, never by the header's text
    positions = [f"{file.name} column {j + 1}" for j in range(len(header)) if j != t]
    return x, y, features, positions


def _cell_description(cell: str) -> _Described:
    """What a cell that is not a number holds, in words (its text is never repeated)."""
    text = cell.strip()
    if not text:
        return _Described("an empty cell")
    try:
        float(text)
        return _Described("a number that is not finite")
    except ValueError:
        return _Described("text that is not a number")


# Unstandardised data beyond this magnitude overflow in the first forward pass or loss (its square
# and the network's products pass 1e308); standardised columns are rescaled instead.
MAX_RAW_MAGNITUDE = 1e100


def _check_magnitude(x: np.ndarray, names, setting: str) -> None:
    for j, name in enumerate(names):
        biggest = float(np.max(np.abs(x[:, j]))) if len(x) else 0.0
        if biggest > MAX_RAW_MAGNITUDE:
            raise SpecError(
                name,
                f"values up to {biggest:.3g}",
                f"|values| <= {MAX_RAW_MAGNITUDE:g} without standardisation",
                hint=f"set problem.{setting} = true or rescale the column",
            )


def load_csv(
    path,
    target: str,
    task: str = "regression",
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    standardize_inputs: bool = True,
    standardize_target: bool = True,
) -> Dataset:
    """A user's CSV file as a Dataset: inputs standardised with training statistics.

    Classification labels may be numbers or text; classes are the sorted distinct values.
    """
    if task not in ("regression", "classification"):
        raise SpecError("problem.task", task, "'regression' or 'classification'")
    x, y, features, positions = read_csv(path, target, task)
    if not standardize_inputs:
        _check_magnitude(x, positions, "standardize")
    if task == "regression":
        if not standardize_target:
            _check_magnitude(np.array([[float(v)] for v in y]), [f"target {target!r}"], "standardize_target")
        return make_dataset(
            x,
            np.array([float(v) for v in y]).reshape(-1, 1),
            task,
            test_fraction=test_fraction,
            seed=seed,
            standardize_inputs=standardize_inputs,
            standardize_target=standardize_target,
            feature_names=features,
            column_labels=positions,
        )
    try:  # numeric labels sort numerically ("10" after "9"), text labels alphabetically
        classes = sorted(set(y), key=float)
    except ValueError:
        classes = sorted(set(y))
    if len(classes) < 2:
        raise SpecError(
            "problem.target", target, "a column with at least two classes", hint="it holds one distinct value"
        )
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[v] for v in y])
    return make_dataset(
        x,
        labels,
        task,
        test_fraction=test_fraction,
        seed=seed,
        standardize_inputs=standardize_inputs,
        n_classes=len(classes),
        feature_names=features,
        class_names=classes,
        column_labels=positions,
    )
