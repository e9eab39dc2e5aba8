"""Built-in problems, registered like any third-party plugin: landscapes, linear regression, MLP tasks."""

from descentlab import HyperParam, Problem, SpecError, hookimpl
from descentlab.activations import ACTIVATIONS
from descentlab.datasets import generated, load_csv, load_sklearn, loss_for
from descentlab.landscapes import Beale, Himmelblau, LinearRegressionInstance, QuadraticBowl, Rosenbrock
from descentlab.network import INIT_SCHEMES, MLP
from descentlab.problem import SupervisedInstance

# -- settings shared by several problems ------------------------------------------------------------


def _start(x: float, y: float) -> tuple[HyperParam, ...]:
    return (
        HyperParam("start_x", x, help="x of the starting point"),
        HyperParam("start_y", y, help="y of the starting point"),
        HyperParam(
            "start_spread",
            0.0,
            low=0.0,
            help="std of a seeded random offset of each run's start (0: every run starts at the same point)",
        ),
    )


def _model(hidden: list[int], activation: str = "tanh") -> tuple[HyperParam, ...]:
    return (
        HyperParam("hidden", list(hidden), low=1, kind="int_list", help="sizes of the hidden layers"),
        HyperParam(
            "activation",
            activation,
            kind="choice",
            choices=tuple(ACTIVATIONS),
            help="activation of the hidden layers (the output layer is linear)",
        ),
        HyperParam(
            "init",
            "auto",
            kind="choice",
            choices=INIT_SCHEMES,
            help="weight initialisation (auto: He uniform for relu/leaky_relu, else Glorot uniform)",
        ),
    )


def _data(samples: int, noise: float | None, test_fraction: float = 0.2) -> tuple[HyperParam, ...]:
    settings = [
        HyperParam("seed", 0, low=0, kind="int", help="data seed: the data and the split depend on it alone"),
        HyperParam("samples", samples, low=2, high=100_000, kind="int", help="number of points"),
    ]
    if noise is not None:
        settings.append(HyperParam("noise", noise, low=0.0, help="standard deviation of the Gaussian noise"))
    settings.append(
        HyperParam(
            "test_fraction",
            test_fraction,
            low=0.0,
            high=0.9,
            help="fraction of the points held out for test loss/accuracy",
        )
    )
    return tuple(settings)


def _real_data(test_fraction: float = 0.2) -> tuple[HyperParam, ...]:
    return (
        HyperParam("seed", 0, low=0, kind="int", help="data seed: the split (and subset) depend on it alone"),
        HyperParam("samples", 0, low=0, kind="int", help="keep a random subset of this many rows (0: all)"),
        HyperParam(
            "test_fraction",
            test_fraction,
            low=0.0,
            high=0.9,
            help="fraction of the rows held out for test loss/accuracy",
        ),
    )


def _instance(dataset, s: dict) -> SupervisedInstance:
    """An MLP sized to the data, with the loss that fits the task."""
    n_outputs = dataset.y_train.shape[1]
    task_size = len(dataset.class_names) if dataset.task == "classification" else n_outputs
    model = MLP(
        [dataset.x_train.shape[1], *s["hidden"], n_outputs],
        activation=s["activation"],
        loss=loss_for(dataset.task, task_size),
        init=s["init"],
    )
    return SupervisedInstance(dataset, model)


# -- builders ---------------------------------------------------------------------------------------


def _build_quadratic(s):
    return QuadraticBowl(
        condition=s["condition"],
        angle=s["angle"],
        lambda_max=s["lambda_max"],
        start=(s["start_x"], s["start_y"]),
        start_spread=s["start_spread"],
    )


def _build_rosenbrock(s):
    return Rosenbrock(a=s["a"], b=s["b"], start=(s["start_x"], s["start_y"]), start_spread=s["start_spread"])


def _build_himmelblau(s):
    return Himmelblau(start=(s["start_x"], s["start_y"]), start_spread=s["start_spread"])


def _build_beale(s):
    return Beale(start=(s["start_x"], s["start_y"]), start_spread=s["start_spread"])


def _build_linear_regression(s):
    if not s["x_low"] < s["x_high"]:
        raise SpecError("problem.x_high", s["x_high"], f"a number greater than x_low = {s['x_low']:g}")
    dataset = generated(
        "line",
        samples=s["samples"],
        noise=s["noise"],
        seed=s["seed"],
        test_fraction=s["test_fraction"],
        standardize_inputs=s["standardize"],
        slope=s["slope"],
        intercept=s["intercept"],
        x_low=s["x_low"],
        x_high=s["x_high"],
    )
    return LinearRegressionInstance(
        dataset, start=(s["start_w"], s["start_b"]), start_spread=s["start_spread"], truth=(s["slope"], s["intercept"])
    )


def _generated_builder(name: str, **option_names):
    """build(settings) for a generated dataset; ``option_names`` maps generator options to settings."""

    def build(s):
        options = {option: s[setting] for option, setting in option_names.items()}
        dataset = generated(
            name,
            samples=s["samples"],
            noise=s["noise"],
            seed=s["seed"],
            test_fraction=s["test_fraction"],
            standardize_inputs=s["standardize"],
            **options,
        )
        return _instance(dataset, s)

    return build


def _sklearn_builder(name: str):
    def build(s):
        return _instance(load_sklearn(name, seed=s["seed"], test_fraction=s["test_fraction"], samples=s["samples"]), s)

    return build


def _build_csv(s):
    dataset = load_csv(
        s["path"],
        s["target"],
        s["task"],
        seed=s["seed"],
        test_fraction=s["test_fraction"],
        standardize_inputs=s["standardize"],
        standardize_target=s["standardize_target"],
    )
    return _instance(dataset, s)


def _standardize(default: bool) -> HyperParam:
    return HyperParam(
        "standardize",
        default,
        kind="bool",
        help="shift and scale inputs to mean 0, std 1 with training-split statistics",
    )


_GENERATED = {
    # name: (summary, default hidden, default samples, default noise, extra settings, generator options)
    "xor": (
        "XOR of the signs of two coordinates: the classic problem a linear model cannot solve",
        [8],
        200,
        0.05,
        (),
        {},
    ),
    "moons": ("two interleaving half circles (binary classification)", [16, 16], 256, 0.1, (), {}),
    "circles": (
        "a small circle inside a large one (binary classification)",
        [16, 16],
        256,
        0.05,
        (HyperParam("factor", 0.5, low=0.05, high=0.95, help="inner radius / outer radius"),),
        {"factor": "factor"},
    ),
    "spirals": (
        "two interleaved spirals (binary classification): hard for small networks",
        [32, 32],
        256,
        0.05,
        (HyperParam("turns", 1.75, low=0.25, high=5.0, help="turns of each spiral arm"),),
        {"turns": "turns"},
    ),
    "blobs": (
        "k Gaussian blobs on a circle (k-class classification)",
        [16],
        300,
        0.5,
        (
            HyperParam("classes", 3, low=2, high=10, kind="int", help="number of classes (blobs)"),
            HyperParam("spread", 2.0, low=0.0, help="radius of the circle of blob centres"),
        ),
        {"classes": "classes", "spread": "spread"},
    ),
    "sine": (
        "regression of y = sin x + noise with an MLP (mse)",
        [32, 32],
        256,
        0.1,
        (HyperParam("periods", 1.0, low=0.1, high=10.0, help="x spans ±π·periods"),),
        {"periods": "periods"},
    ),
}

_SKLEARN = {
    "digits": ("scikit-learn's 8x8 handwritten digits: 1797 images, 64 pixels, 10 classes", [32]),
    "iris": ("scikit-learn's iris flowers: 150 samples, 4 features, 3 classes", [16]),
    "breast_cancer": ("scikit-learn's Wisconsin breast cancer: 569 samples, 30 features, 2 classes", [16]),
    "diabetes": (
        "scikit-learn's diabetes progression: 442 samples, 10 features, regression "
        "(target standardised on the training split)",
        [32],
    ),
}


@hookimpl
def register_problems(register):
    """Register the built-in problems."""
    register(
        Problem(
            "quadratic",
            _build_quadratic,
            (
                HyperParam("condition", 10.0, low=1.0, high=1e6, log=True, help="condition number κ = λ_max / λ_min"),
                HyperParam("angle", 30.0, low=-180.0, high=180.0, help="rotation of the top eigenvector, in degrees"),
                HyperParam(
                    "lambda_max",
                    1.0,
                    low=0.0,
                    low_open=True,
                    log=True,
                    help="largest Hessian eigenvalue (GD is stable iff α·λ_max < 2)",
                ),
                *_start(-4.0, 3.0),
            ),
            "quadratic bowl ½ pᵀAp with chosen condition number and rotation; exact Hessian known",
            kind="landscape",
            has_model=False,
        )
    )
    register(
        Problem(
            "rosenbrock",
            _build_rosenbrock,
            (
                HyperParam("a", 1.0, help="minimum at (a, a²)"),
                HyperParam("b", 100.0, low=0.0, help="steepness of the valley walls"),
                *_start(-1.2, 1.0),
            ),
            "Rosenbrock's banana valley (a − x)² + b(y − x²)²",
            kind="landscape",
            has_model=False,
        )
    )
    register(
        Problem(
            "himmelblau",
            _build_himmelblau,
            _start(0.0, 0.0),
            "Himmelblau's function: four minima of value 0",
            kind="landscape",
            has_model=False,
        )
    )
    register(
        Problem(
            "beale",
            _build_beale,
            _start(1.0, 1.5),
            "Beale's function: flat plateaus and a sharp valley, minimum at (3, 0.5)",
            kind="landscape",
            has_model=False,
        )
    )
    register(
        Problem(
            "linear_regression",
            _build_linear_regression,
            (
                *_data(64, 0.3),
                HyperParam("slope", 2.0, help="slope of the true line"),
                HyperParam("intercept", -1.0, help="intercept of the true line"),
                HyperParam("x_low", 0.0, help="x is uniform in [x_low, x_high]"),
                HyperParam("x_high", 2.0, help="x is uniform in [x_low, x_high]"),
                _standardize(False),
                HyperParam("start_w", 0.0, help="starting weight"),
                HyperParam("start_b", 0.0, help="starting bias"),
                HyperParam("start_spread", 0.0, low=0.0, help="std of a seeded random offset of each run's start"),
            ),
            "one weight and one bias fitted to a noisy line: J(w, b) = ½ mean (wx + b − y)²",
            kind="regression",
            has_model=True,
        )
    )
    for name, (summary, hidden, samples, noise, extra, options) in _GENERATED.items():
        kind = "regression" if name == "sine" else "classification"
        register(
            Problem(
                name,
                _generated_builder(name, **options),
                (*_data(samples, noise), *extra, _standardize(False), *_model(hidden)),
                summary,
                kind=kind,
                has_model=True,
            )
        )
    for name, (summary, hidden) in _SKLEARN.items():
        kind = "regression" if name == "diabetes" else "classification"
        register(
            Problem(name, _sklearn_builder(name), (*_real_data(), *_model(hidden)), summary, kind=kind, has_model=True)
        )
    register(
        Problem(
            "csv",
            _build_csv,
            (
                HyperParam("path", "", kind="str", help="path of a CSV file with a header row"),
                HyperParam("target", "", kind="str", help="name of the target column; every other column is an input"),
                HyperParam(
                    "task",
                    "regression",
                    kind="choice",
                    choices=("regression", "classification"),
                    help="regression (mse) or classification (bce_logits for 2 classes, softmax_ce for more)",
                ),
                HyperParam("seed", 0, low=0, kind="int", help="data seed: the split depends on it alone"),
                HyperParam("test_fraction", 0.2, low=0.0, high=0.9, help="fraction of the rows held out"),
                _standardize(True),
                HyperParam(
                    "standardize_target",
                    True,
                    kind="bool",
                    help="regression only: standardise the target with training-split statistics",
                ),
                *_model([16]),
            ),
            "your own CSV file: every column but the target is an input",
            kind="regression",
            has_model=True,
        )
    )
