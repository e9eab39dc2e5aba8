"""Gradient transforms around a descent rule: an entry's ``transforms`` chained with its rule into one rule.

The chunk loop (``descentlab.chunk``) trains a :class:`~descentlab.declarations.DescentRule`; an
entry with transforms gets :func:`chain_rule`'s rule instead, which, every step,

1. passes the gradient through each transform's ``update`` in the entry's order (clipping, L2
   weight decay, noise, centralisation ...): ``g ← T_k(... T_1(g))``;
2. calls the rule on that gradient: ``u ← rule(g)``;
3. passes the rule's updates through each wrapper's ``after`` in the entry's order (decoupled
   weight decay, Lookahead ...): ``u ← W_m(... W_1(u))``;

and the loop applies θ ← θ + u as for any rule. The chained rule's hyperparameters are the rule's
plus one ``(R, 1)`` array per transform hyperparameter and the runs' seeds, under keys that are not
identifiers (``"@0.max_norm"``, ``"@seed"``), so the loop drops the rows of diverged runs from them
as from the rule's. Its state is a :class:`ChainState`. An entry without transforms never comes
here: its results are those of the rule alone, bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .declarations import SEED_KEY, DescentRule, Transform

__all__ = ["SEED_HYPER", "ChainState", "ChainFault", "hyper_key", "chain_hyper", "chain_rule", "describe"]

SEED_HYPER = "@" + SEED_KEY


class ChainFault(Exception):
    """A part of a chained rule (a transform, or the rule inside) broke: the message is the whole
    one line, naming that part and its own file:line (not this module's, which only calls it)."""


def _part(kind: str, name: str, function, *code):
    """``function`` as a part of a chain: what it raises becomes a ChainFault naming it (Ctrl-C passes)."""
    from .faults import fault

    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (KeyboardInterrupt, ChainFault):
            raise
        except BaseException as error:  # sys.exit too: this part's fault only
            raise ChainFault(fault(kind, name, error, *code, fallback=function)) from error

    return call


def _checked_pair(kind: str, name: str, function, result, what: str):
    """``result`` of a part that must return ``(array, state)``; else a ChainFault saying so."""
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return result
    from .faults import definition

    got = "None" if result is None else f"{type(result).__name__} {getattr(result, 'shape', '')}".strip()
    raise ChainFault(f"{kind} {name!r} ({definition(function)}): returned {got}; expected a pair ({what}, state)")


def _no_writes(kind: str, name: str, function, before, params, grad) -> None:
    """On a chain's first step: a part that wrote into ``params`` or the gradient it was given is named."""
    from .faults import definition, wrote_into

    wrote = wrote_into(before[0], params, before[1], grad)
    if wrote:
        raise ChainFault(f"{kind} {name!r} ({definition(function)}) {wrote.replace('update ', '', 1)}")


class ChainState:
    """A chained rule's state: the rule's own state and one state per transform, in entry order.

    The chunk loop drops diverged runs' rows from each part as it would from a rule's state
    (``chunk._take_rows``), so every part keeps the run axis first.
    """

    __slots__ = ("rule", "transforms")

    def __init__(self, rule: Any, transforms: tuple):
        self.rule, self.transforms = rule, tuple(transforms)

    def map(self, function) -> "ChainState":
        """A new state with ``function`` applied to the rule's state and to each transform's."""
        return ChainState(function(self.rule), tuple(function(s) for s in self.transforms))

    def __repr__(self) -> str:
        return f"ChainState(rule={type(self.rule).__name__}, transforms={len(self.transforms)})"


def hyper_key(position: int, name: str) -> str:
    """The key of transform ``position``'s hyperparameter ``name`` in a chained rule's ``hyper``."""
    return f"@{position}.{name}"


def chain_hyper(transforms: list[tuple[Transform, dict]], runs: int, seeds, dtype) -> dict[str, np.ndarray]:
    """The transforms' hyperparameters (one value per entry) as ``(runs, 1)`` arrays, and the runs' seeds."""
    out: dict[str, np.ndarray] = {}
    for position, (transform, values) in enumerate(transforms):
        for h in transform.hyperparams:
            value = values.get(h.name, h.default)
            array = (
                np.full((runs, 1), float(value), dtype=dtype)
                if isinstance(value, (bool, int, float))
                else np.full((runs, 1), value, dtype=object)
            )
            out[hyper_key(position, h.name)] = array
    out[SEED_HYPER] = np.asarray(seeds, dtype=np.int64).reshape(runs, 1)
    return out


def chain_rule(rule: DescentRule, transforms: list[Transform], layout=None) -> DescentRule:
    """``rule`` with ``transforms`` applied around it (see the module docstring), as one DescentRule.

    ``hyper`` passed to the result holds the rule's hyperparameters and :func:`chain_hyper`'s arrays.
    ``layout`` (the problem's ParamLayout) is passed to the ``init`` of transforms that declare
    ``uses_layout``.
    """
    transforms = list(transforms)
    rule_names = tuple(h.name for h in rule.hyperparams)
    keys = [tuple((h.name, hyper_key(i, h.name)) for h in t.hyperparams) for i, t in enumerate(transforms)]
    before = [i for i, t in enumerate(transforms) if t.update is not None]
    wrappers = [i for i, t in enumerate(transforms) if t.after is not None]

    def split(hyper):
        own = {name: hyper[name] for name in rule_names if name in hyper}
        seed = hyper[SEED_HYPER]
        parts = []
        for names in keys:
            part = {name: hyper[key] for name, key in names}
            part[SEED_KEY] = seed
            parts.append(part)
        return own, parts

    def init(params, hyper):
        own, parts = split(hyper)
        states = []
        for t, part in zip(transforms, parts):
            if t.init is None:
                states.append(None)
                continue
            start = _part("transform", t.name, t.init, t.init, t.update, t.after)
            states.append(start(params, part, layout=layout) if t.uses_layout else start(params, part))
        own_start = _part("rule", rule.name, rule.start, rule.init, rule.update)
        return ChainState(own_start(params, own, layout), tuple(states))

    # each part called through _part, built once: what it raises names that part and its file
    code = [(t.init, t.update, t.after) for t in transforms]
    before_calls = {i: _part("transform", transforms[i].name, transforms[i].update, *code[i]) for i in before}
    after_calls = {i: _part("transform", transforms[i].name, transforms[i].after, *code[i]) for i in wrappers}
    rule_update = _part("rule", rule.name, rule.update, rule.init, rule.update)
    first = [True]  # the first update of this chain is checked for writes into its inputs

    def update(grad, state, params, learning_rate, hyper, step):
        own, parts = split(hyper)
        states = list(state.transforms)
        check, first[0] = first[0], False
        g = grad
        for i in before:
            t = transforms[i]
            seen = (params.copy(), g.copy()) if check else None
            result = before_calls[i](g, states[i], params, parts[i], step)
            new_g, states[i] = _checked_pair("transform", t.name, t.update, result, "grad")
            if seen is not None:
                _no_writes("transform", t.name, t.update, seen, params, g)
            g = new_g
            if getattr(g, "shape", None) != grad.shape:
                raise ChainFault(
                    f"transform {t.name!r} ({_definition(t.update)}) returned a gradient of shape "
                    f"{getattr(g, 'shape', type(g).__name__)}; expected {grad.shape}"
                )
        seen = (params.copy(), g.copy()) if check else None
        result = rule_update(g, state.rule, params, learning_rate, own, step)
        updates, rule_state = _checked_pair("rule", rule.name, rule.update, result, "updates")
        if seen is not None:
            _no_writes("rule", rule.name, rule.update, seen, params, g)
        for i in wrappers:
            t = transforms[i]
            seen = (params.copy(), updates) if check else None  # the updates are the wrapper's to change
            result = after_calls[i](updates, states[i], params, learning_rate, parts[i], step)
            new_updates, states[i] = _checked_pair("transform", t.name, t.after, result, "updates")
            if seen is not None:
                _no_writes("transform", t.name, t.after, seen, params, updates)
            updates = new_updates
            if getattr(updates, "shape", None) != grad.shape:
                raise ChainFault(
                    f"transform {t.name!r} ({_definition(t.after)}) returned updates of shape "
                    f"{getattr(updates, 'shape', type(updates).__name__)}; expected {grad.shape}"
                )
        return updates, ChainState(rule_state, tuple(states))

    preconditioner = None
    if rule.preconditioner is not None:

        def preconditioner(state, hyper, step):
            return rule.preconditioner(state.rule, split(hyper)[0], step)

    return DescentRule(
        rule.name,
        init,
        update,
        hyperparams=rule.hyperparams,
        summary=rule.summary,
        formula=rule.formula,
        default_learning_rate=rule.default_learning_rate,
        title=rule.title,
        preconditioner=preconditioner,
        preconditioned_limit=rule.preconditioned_limit,
    )


def _definition(function) -> str:
    from .faults import definition

    return definition(function)


def describe(specs) -> str:
    """The runs table's text for an entry's transforms: ``clip_global_norm(max_norm=1)>lookahead(k=5,alpha=0.5)``.

    ``specs`` are ``(name, values)`` pairs in entry order; empty text when there are none.
    """
    parts = []
    for name, values in specs:
        inner = ",".join(f"{k}={_value(v)}" for k, v in values.items())
        parts.append(f"{name}({inner})")
    return ">".join(parts)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # shortest text that reads back as the same float: 1.0 -> "1"
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)
