"""Owns the pluggy PluginManager and the registry of descent rules, schedules and problems it collects."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pluggy
from pluggy._hooks import varnames  # how pluggy itself reads a hookimpl's arguments

from . import hookspecs
from .declarations import DescentRule, Problem, Schedule
from .declarations import Transform
from .errors import SpecError, one_line
from .faults import definition, error_text, where

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "NO_ENTRY_POINTS_ENV",
    "BUILTIN_MODULES",
    "Registry",
    "make_plugin_manager",
    "env_plugin_paths",
    "plugin_code",
    "load_registry",
    "get_registry",
    "reset_registry",
]

ENTRY_POINT_GROUP = "descentlab"
PLUGINS_ENV = "DESCENTLAB_PLUGINS"
NO_ENTRY_POINTS_ENV = "DESCENTLAB_NO_ENTRY_POINTS"
BUILTIN_MODULES = (
    "descentlab.plugins.rules",
    "descentlab.plugins.rules_more",
    "descentlab.plugins.rules_new",
    "descentlab.plugins.rules_muon",
    "descentlab.plugins.schedules",
    "descentlab.plugins.problems",
    "descentlab.plugins.transforms",
)

# (hook name, registry attribute, declaration type, noun used in messages)
_KINDS = (
    ("register_optimizers", "rules", DescentRule, "rule"),
    ("register_schedules", "schedules", Schedule, "schedule"),
    ("register_problems", "problems", Problem, "problem"),
    ("register_transforms", "transforms", Transform, "transform"),
)


@dataclass
class Registry:
    """Everything the loaded plugins registered, where each came from, and what went wrong."""

    rules: dict[str, DescentRule] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    problems: dict[str, Problem] = field(default_factory=dict)
    transforms: dict[str, Transform] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    plugin_paths: tuple[str, ...] = ()

    def _get(self, kind: str, name: str):
        table = getattr(self, kind + "s")
        if name not in table:
            raise SpecError(kind, name, "one of " + ", ".join(sorted(table)))
        return table[name]

    def rule(self, name: str) -> DescentRule:
        return self._get("rule", name)

    def schedule(self, name: str) -> Schedule:
        return self._get("schedule", name)

    def problem(self, name: str) -> Problem:
        return self._get("problem", name)

    def transform(self, name: str) -> Transform:
        return self._get("transform", name)

    def origin(self, kind: str, name: str) -> str:
        return self.origins.get((kind, name), "unknown")


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh manager that knows descentlab's hook specifications and nothing else."""
    pm = pluggy.PluginManager("descentlab")
    pm.add_hookspecs(hookspecs)
    return pm


def _origin_of_entry_point(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"package {dist.name} {dist.version}" if dist is not None else f"package entry point {ep.name}"


def _load_file(path: str):
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"no such file {path}")
    # Stem plus a digest of the full path: unique per file, and the same in every worker process.
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    module_name = "descentlab_file_plugin_" + "".join(c if c.isalnum() else "_" for c in resolved.stem) + "_" + digest
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:  # a path Python cannot load as a module
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # lets worker processes and dataclasses find it by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _short_reason(error: BaseException, *code) -> str:
    """``Type: message (path:line)`` on one line, the line the deepest one in the plugin's own files."""
    place = where(error, *code)
    return one_line(error_text(error) + (f" ({place})" if place else ""))


def _accepted_hooks(pm: pluggy.PluginManager) -> str:
    return ", ".join(f"{name}({', '.join(getattr(pm.hook, name).spec.argnames)})" for name, *_ in _KINDS)


def _hook_mismatch(pm: pluggy.PluginManager, plugin) -> str | None:
    """One line for the first descentlab hookimpl of ``plugin`` that is no descentlab hook (a misspelt
    name) or asks for arguments the hook does not pass; None when every one matches. pluggy would
    accept the first silently and refuse the second in three lines."""
    for attribute in dir(plugin):
        try:
            options = pm.parse_hookimpl_opts(plugin, attribute)
        except Exception:  # an attribute that cannot even be looked at is no hookimpl
            continue
        if options is None:
            continue
        function = getattr(plugin, attribute)
        hook_name = options.get("specname") or attribute
        caller = getattr(pm.hook, hook_name, None)
        spec = getattr(caller, "spec", None)
        place = definition(function)
        head = f"hook {attribute}" + (f" ({place})" if place else "")
        if spec is None:
            return f"{head} is not a descentlab hook; expected one of {_accepted_hooks(pm)}"
        required, _ = varnames(function)
        extra = [a for a in required if a not in spec.argnames]
        if extra:
            return (
                f"{head} takes ({', '.join(required)}), but {hook_name} passes only "
                f"({', '.join(spec.argnames)}); expected def {hook_name}({', '.join(spec.argnames)})"
            )
    return None


def _register(pm: pluggy.PluginManager, plugin, name: str) -> None:
    """``pm.register`` after checking the plugin's hooks; a mismatch is a ValueError of one line."""
    mismatch = _hook_mismatch(pm, plugin)
    if mismatch is None:
        try:
            pm.register(plugin, name=name)
            return
        except pluggy.PluginValidationError as error:  # what the check above did not foresee
            mismatch = one_line(error)
    raise _HookMismatch(mismatch)


class _HookMismatch(ValueError):
    """A plugin whose hooks descentlab cannot call (the message is the whole story)."""


def plugin_code(paths) -> tuple[tuple[str, str], ...]:
    """``(path, digest of its bytes)`` per plugin file ("" when unreadable): what a cached registry,
    or results made with it, depend on. An edited file has another digest, so whoever keys a cache
    by this (the dashboard, a long-lived worker) imports it again instead of keeping the old code."""
    out = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                out.append((str(path), hashlib.sha1(handle.read()).hexdigest()))
        except OSError:
            out.append((str(path), ""))
    return tuple(out)


def env_plugin_paths() -> list[str]:
    """Plugin files named by the DESCENTLAB_PLUGINS environment variable (an os.pathsep list)."""
    return [p for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p.strip()]


def load_registry(
    plugin_paths=(),
    *,
    entry_points: bool | None = None,
    use_env: bool = True,
    extra_plugins=(),
    pm: pluggy.PluginManager | None = None,
) -> Registry:
    """Register the built-ins, installed entry points and plugin files, then collect their declarations.

    A plugin that fails to import, raises while registering, or registers a duplicate or invalid
    declaration is reported in ``registry.errors`` by name; every other plugin keeps working.
    ``extra_plugins`` are ``(name, object)`` pairs registered as-is (tests use this).
    """
    pm = pm or make_plugin_manager()
    registry = Registry()
    origin_of: dict[str, str] = {}

    for module_name in BUILTIN_MODULES:
        pm.register(importlib.import_module(module_name), name=module_name)
        origin_of[module_name] = "built-in"

    if entry_points is None:
        entry_points = not os.environ.get(NO_ENTRY_POINTS_ENV)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                _register(pm, ep.load(), ep.name)
                origin_of[ep.name] = _origin_of_entry_point(ep)
            except KeyboardInterrupt:
                raise
            except _HookMismatch as error:
                registry.errors.append(f"plugin {ep.name!r}: {error}")
            except BaseException as error:  # a broken third-party package (sys.exit too) must not stop the others
                registry.errors.append(f"plugin {ep.name!r}: failed to load: {_short_reason(error)}")

    paths = list(plugin_paths) + (env_plugin_paths() if use_env else [])
    # The same file named twice (say by --plugin and DESCENTLAB_PLUGINS) loads once.
    unique: dict[str, str] = {}
    for path in paths:
        unique.setdefault(str(Path(path).expanduser().resolve()), path)
    registry.plugin_paths = tuple(unique)
    for resolved, path in unique.items():
        name = f"file:{resolved}"  # the full path: two files may share a name in different folders
        try:
            module = _load_file(path)
            if pm.is_registered(module):
                continue
            _register(pm, module, name)
            origin_of[name] = f"file {Path(path).expanduser().resolve()}"
        except KeyboardInterrupt:
            raise
        except _HookMismatch as error:
            registry.errors.append(f"plugin {path!r}: {error}")
        except BaseException as error:  # raising at import, sys.exit included, is this file's fault only
            registry.errors.append(f"plugin {path!r}: failed to load: {_short_reason(error, resolved)}")

    for name, plugin in extra_plugins:
        try:
            _register(pm, plugin, name)
            origin_of[name] = f"registered {name}"
        except _HookMismatch as error:
            registry.errors.append(f"plugin {name!r}: {error}")

    for hook_name, attribute, declaration_type, noun in _KINDS:
        table = getattr(registry, attribute)
        # get_hookimpls() lists plugins in registration order (pluggy calls them in reverse): the
        # first to register a name keeps it, so a plugin file cannot shadow a built-in.
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin_name = impl.plugin_name
            origin = origin_of.get(plugin_name, plugin_name)

            def register(declaration, _plugin=plugin_name, _origin=origin):
                # A bad declaration is reported and skipped; the plugin's other declarations still count.
                try:
                    if not isinstance(declaration, declaration_type):
                        raise TypeError(f"register() expects a {declaration_type.__name__}, got {declaration!r}")
                    declaration.validate_declaration()
                    if declaration.name in table:
                        raise ValueError(
                            f"{noun} {declaration.name!r} is already registered by "
                            f"{registry.origins[(noun, declaration.name)]}"
                        )
                except Exception as error:  # any broken declaration is that declaration's fault only
                    caller = sys._getframe(1)  # the plugin's register(...) line, for the one-line error
                    where = f" ({caller.f_code.co_filename}:{caller.f_lineno})"
                    registry.errors.append(f"plugin {_plugin!r}: {error}{where}")
                    return
                table[declaration.name] = declaration
                registry.origins[(noun, declaration.name)] = _origin

            try:
                impl.function(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # sys.exit in a hook too: this plugin's fault only
                registry.errors.append(
                    f"plugin {plugin_name!r}: {hook_name} failed: {_short_reason(error, impl.function, impl.plugin)}"
                )
    return registry


_default_registry: Registry | None = None


def get_registry() -> Registry:
    """The registry of built-ins, installed entry points and DESCENTLAB_PLUGINS files, loaded once."""
    global _default_registry
    if _default_registry is None:
        _default_registry = load_registry()
    return _default_registry


def reset_registry() -> None:
    """Forget the cached default registry (after installing or changing plugins)."""
    global _default_registry
    _default_registry = None
