"""Each built-in's declared torch_defaults are read back from the installed torch.optim signatures,
so `descentlab plugins` and the README cannot go stale when torch changes a default."""

from __future__ import annotations

import inspect

import pytest

from descentlab import load_registry

# descentlab hyperparameter -> (torch argument, index into it when torch takes a pair)
TORCH_ARGUMENT = {
    "learning_rate": ("lr", None),
    "beta1": ("betas", 0),
    "beta2": ("betas", 1),
    "etaminus": ("etas", 0),
    "etaplus": ("etas", 1),
    "step_size_min": ("step_sizes", 0),
    "step_size_max": ("step_sizes", 1),
    "eps1": ("eps", 0),  # Adafactor's eps = (eps1, eps2)
    "eps2": ("eps", 1),
    "ns_a": ("ns_coefficients", 0),  # Muon's Newton–Schulz coefficients (a, b, c)
    "ns_b": ("ns_coefficients", 1),
    "ns_c": ("ns_coefficients", 2),
}
# torch writes "the dtype's machine epsilon" as None; descentlab's declaration says 0 for it
TORCH_NONE_IS = {"eps1": 0.0, "adjust_lr_fn": "original"}
# rules that follow a torch.optim class; classical_momentum has none (α sits inside its buffer)
WITH_TORCH = {
    "gd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "radam",
    "adadelta",
    "rprop",
    "asgd",
    "adafactor",
    "muon",
}


def _rules():
    return load_registry(entry_points=False, use_env=False).rules


def _torch_signature_defaults(name: str) -> dict:
    optim = pytest.importorskip("torch.optim")
    parameters = inspect.signature(getattr(optim, name)).parameters
    return {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("name", sorted(WITH_TORCH))
def test_declared_torch_defaults_are_torchs_and_cover_every_shared_hyperparameter(name):
    rule = _rules()[name]
    assert rule.torch_optimizer and rule.torch_defaults, f"{name} declares no torch counterpart"
    torch_defaults = _torch_signature_defaults(rule.torch_optimizer)
    expected = {}
    for own in ["learning_rate", *(h.name for h in rule.hyperparams)]:
        argument, index = TORCH_ARGUMENT.get(own, (own, None))
        if argument not in torch_defaults:
            continue  # a hyperparameter torch does not have
        value = torch_defaults[argument]
        value = value if index is None else value[index]
        expected[own] = TORCH_NONE_IS[own] if value is None and own in TORCH_NONE_IS else value
    assert rule.torch_defaults == expected


def test_rules_without_a_torch_counterpart_declare_none():
    for name, rule in _rules().items():
        if name not in WITH_TORCH:
            assert not rule.torch_defaults and not rule.torch_optimizer, name


def test_the_sgd_family_differs_from_torch_where_the_issue_says():
    rules = _rules()
    assert rules["gd"].torch_differences() == [("learning_rate", 0.01, 0.001)]
    assert rules["momentum"].torch_differences() == [("learning_rate", 0.01, 0.001), ("momentum", 0.9, 0.0)]
    assert rules["adam"].torch_differences() == []


def test_plugins_listing_names_every_difference(capsys):
    from descentlab.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "defaults differ from torch.optim.SGD: learning_rate 0.01 (torch 0.001), momentum 0.9 (torch 0)" in out
    rules = _rules()
    differing = [n for n, r in rules.items() if r.torch_differences()]
    assert out.count("defaults differ from torch.optim.") == len(differing)
    assert "same defaults as torch.optim.Adam" in out
    assert "same defaults as torch.optim.Adafactor" in out


def test_a_declaration_naming_an_undeclared_hyperparameter_is_refused():
    from descentlab import DescentRule

    rule = DescentRule("x", lambda p, h: (), lambda *a: None, torch_optimizer="SGD", torch_defaults={"nope": 1})
    with pytest.raises(ValueError, match="nope"):
        rule.validate_declaration()
    with pytest.raises(ValueError, match="torch_optimizer"):
        DescentRule("x", lambda p, h: (), lambda *a: None, torch_defaults={"learning_rate": 1}).validate_declaration()


def test_readme_counts_and_names_what_is_built_in_and_which_torch_optimizers_it_leaves_out():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = " ".join(text.split("## Built in, and torch.optim", 1)[1].strip().split("\n\n", 1)[0].split())
    registry = load_registry(entry_points=False, use_env=False)
    counts = {
        kind: int(n)
        for n, kind in re.findall(r"(\d+) (descent rules|learning-rate schedules|gradient transforms)", section)
    }
    assert counts == {
        "descent rules": len(registry.rules),
        "learning-rate schedules": len(registry.schedules),
        "gradient transforms": len(registry.transforms),
    }
    named = set(re.findall(r"`([a-z_]+)`", section.split("15 learning-rate")[0]))
    assert named == set(registry.rules)
    # every torch.optim optimizer is followed by a rule or named as left out
    optim = pytest.importorskip("torch.optim")
    classes = {n for n, c in vars(optim).items() if inspect.isclass(c) and issubclass(c, optim.Optimizer)} - {
        "Optimizer"
    }
    followed = {rule.torch_optimizer for rule in registry.rules.values() if rule.torch_optimizer}
    left_out = set(
        re.search(r"every torch\.optim optimizer but ([^)]*)\)", section).group(1).replace(" and", ",").split(", ")
    )
    assert classes - followed == {"SparseAdam", "LBFGS"} and left_out == {"SparseAdam", "L-BFGS"}
