"""The reward registry: reward factories found by name, including third-party plug-ins.

Built-in rewards are a plain table below of ``"module:Class"`` strings, imported when a reward is first made
(or its signature read), so this module imports none of the rewards and any of them may import it.
``register`` adds more at run time, and installed packages add theirs through the entry-point group
``textenv.rewards``: each entry point's name is the reward name and it loads to a factory (a callable
returning a reward function), for example in a plug-in's ``pyproject.toml``::

    [project.entry-points."textenv.rewards"]
    politeness = "my_package.rewards:PolitenessReward"

Entry points are loaded once, on the first ``make`` or ``names`` call, so ``import rewards`` stays cheap;
a plug-in should keep heavy imports (torch, a model) inside its factory. A plug-in that fails to load is
skipped with a ``RewardPluginWarning`` and never breaks the other rewards.

``resolve`` turns whatever a user configured (a name, a function, an already built reward) into a
``ValidatedReward``. The env calls it once, when it is built, never inside the step loop.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from rewards.errors import RewardConfigError, RewardError, RewardPluginWarning, UnknownRewardError
from rewards.protocol import RewardFn
from rewards.validation import ValidatedReward

__all__ = ["ENTRY_POINT_GROUP", "accepts", "make", "names", "register", "resolve"]

ENTRY_POINT_GROUP = "textenv.rewards"
"""The entry-point group that third-party packages register reward factories under."""

RewardFactory = Callable[..., RewardFn]

_BUILTINS: dict[str, str] = {
    "clip": "rewards.combinators:Clip",
    "format": "rewards.patterns:FormatReward",
    "human": "rewards.human.reward:HumanReward",
    "judge": "rewards.judge:LMJudge",
    "keyword": "rewards.rules:KeywordReward",
    "learned": "rewards.learned:LearnedReward",
    "length": "rewards.rules:LengthReward",
    "normalize": "rewards.combinators:RunningNormalize",
    "offensive": "rewards.offensive:OffensiveLanguage",
    "regex": "rewards.patterns:RegexReward",
    "repetition": "rewards.patterns:RepetitionReward",
    "rouge": "rewards.overlap:RougeReward",
    "sentiment": "rewards.sentiment:VaderSentiment",
    "similarity": "rewards.similarity:SemanticSimilarity",
    "weighted_sum": "rewards.combinators:WeightedSum",
}
"""The built-in rewards: each name's factory as ``"module:attribute"``, imported when first used."""

# A factory, or a built-in's "module:attribute" string that _factory imports on use.
_registry: dict[str, RewardFactory | str] = dict(_BUILTINS)
# Entry points that failed to load, by reward name, with the reason; make() reports it instead of
# "unknown reward" so the user learns why their plug-in is missing.
_broken_plugins: dict[str, str] = {}
_plugins_loaded = False


def _import_factory(target: str) -> RewardFactory:
    """Import the factory that a ``"module:attribute"`` string of the built-in table names.

    Raises:
        ImportError: The module cannot be imported.
        AttributeError: The module has no such attribute.
    """
    module, _, attribute = target.partition(":")
    factory: RewardFactory = getattr(importlib.import_module(module), attribute)
    return factory


def _factory(name: str) -> RewardFactory | None:
    """The factory registered as ``name`` (a built-in imported now), or ``None`` if there is none."""
    entry = _registry.get(name)
    return _import_factory(entry) if isinstance(entry, str) else entry


def _warn(message: str) -> None:
    warnings.warn(message, RewardPluginWarning, stacklevel=4)


def _load_plugins() -> None:
    """Load the ``textenv.rewards`` entry points into the registry, once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first, so a plug-in that calls names() while loading cannot recurse
    try:
        entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a broken installed distribution must not break the built-ins
        _warn(
            f"could not list the {ENTRY_POINT_GROUP!r} entry points, so no reward plug-ins are loaded: "
            f"{type(exc).__name__}: {exc}"
        )
        return
    for ep in entry_points:
        where = f"entry point {ep.name} = {ep.value!r} in group {ENTRY_POINT_GROUP!r}"
        if ep.name in _registry:
            owner = "a built-in reward" if _registry[ep.name] == _BUILTINS.get(ep.name) else "another reward"
            _warn(f"skipping reward plug-in {where}: the name {ep.name!r} is already taken by {owner}")
            continue
        try:
            factory = ep.load()
        except Exception as exc:  # any error inside a third-party module: skip that plug-in only
            reason = f"{type(exc).__name__}: {exc}"
            _broken_plugins[ep.name] = f"{where} failed to load ({reason})"
            _warn(f"skipping reward plug-in {where}: loading it raised {reason}")
            continue
        if not callable(factory):
            _broken_plugins[ep.name] = f"{where} loads {type(factory).__name__}, not a callable factory"
            _warn(f"skipping reward plug-in {where}: it loads a {type(factory).__name__}, not a factory")
            continue
        _registry[ep.name] = factory


def register(name: str, factory: RewardFactory, *, overwrite: bool = False) -> None:
    """Register a reward factory under ``name``, for ``make(name, **kwargs)``.

    Args:
        name: The reward's name, a non-empty string.
        factory: A callable that takes the reward's configuration as keyword arguments and returns a
            reward function (see ``rewards.RewardFn``); usually the reward's class.
        overwrite: Replace an existing reward of the same name instead of raising.

    Raises:
        TypeError: If ``name`` is not a non-empty string or ``factory`` is not callable.
        RewardError: If ``name`` is taken and ``overwrite`` is false.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"reward name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"reward {name!r}: factory must be callable, got {type(factory).__name__} {factory!r}")
    if name in _registry and not overwrite:
        raise RewardError(
            f"a reward named {name!r} is already registered ({_registry[name]!r}); "
            "pick another name or pass overwrite=True to replace it"
        )
    _registry[name] = factory
    _broken_plugins.pop(name, None)


def names() -> list[str]:
    """Return the names of all registered rewards (built-ins and plug-ins), sorted."""
    _load_plugins()
    return sorted(_registry)


def _unknown_message(name: str) -> str:
    known = sorted(_registry)
    message = f"no reward is registered under the name {name!r}."
    matches = difflib.get_close_matches(name, known, n=3)
    if matches:
        message += f" Did you mean: {', '.join(map(repr, matches))}?"
    return (
        f"{message} List the registered rewards with rewards.names() or `textenv list`; third-party "
        f"packages add rewards through the entry-point group {ENTRY_POINT_GROUP!r}."
    )


def _signature_help(sig: inspect.Signature) -> str:
    shown = [
        p.name if p.default is p.empty else f"{p.name}={p.default!r}"
        for p in sig.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return ", ".join(shown) if shown else "no arguments"


def _check_kwargs(name: str, factory: RewardFactory, kwargs: dict[str, Any]) -> None:
    """Raise ``RewardConfigError`` if ``factory`` cannot take ``kwargs``, naming the reward and argument."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no introspectable signature (some C callables): let the call decide
        return
    params = sig.parameters
    accepts = f"{name!r} accepts: {_signature_help(sig)}"
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        keyword_names = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for key in kwargs:
            if key not in keyword_names:
                close = difflib.get_close_matches(key, keyword_names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise RewardConfigError(f"rewards.make({name!r}): unexpected keyword argument {key!r}{hint}. {accepts}")
    try:
        sig.bind(**kwargs)
    except TypeError as exc:
        raise RewardConfigError(f"rewards.make({name!r}): {exc}. {accepts}") from None


def accepts(name: str, keyword: str) -> bool:
    """Whether the factory of the reward registered as ``name`` takes the keyword argument ``keyword``.

    ``False`` for an unknown name, and for a factory whose signature cannot be read or that takes only
    ``**kwargs`` (which says nothing about the keyword).
    """
    _load_plugins()
    factory = _factory(name)
    if factory is None:
        return False
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    found = params.get(keyword)
    return found is not None and found.kind in (found.KEYWORD_ONLY, found.POSITIONAL_OR_KEYWORD)


def make(name: str, **kwargs: Any) -> ValidatedReward:
    """Build the reward registered under ``name``.

    Args:
        name: A registered reward name; see ``names()``.
        **kwargs: The reward's configuration, passed to its factory.

    Returns:
        The reward function, wrapped in a ``ValidatedReward`` named ``name``.

    Raises:
        UnknownRewardError: If no reward is registered under ``name`` (the message lists close matches).
        RewardError: If ``name`` belongs to a plug-in that failed to load, or its factory did not return
            a callable.
        RewardConfigError: If the factory does not accept ``kwargs`` (a ``TypeError`` too).
        ValueError: If the factory rejects a configuration value.

    Example:
        >>> reward = make("length", target=3)
        >>> reward(["Describe the sky."], ["It is blue."])
        array([0.])
    """
    if not isinstance(name, str):
        raise TypeError(f"reward name must be a str, got {type(name).__name__} {name!r}")
    _load_plugins()
    factory = _factory(name)
    if factory is None:
        if name in _broken_plugins:
            raise RewardError(f"reward {name!r} is unavailable: the {_broken_plugins[name]}")
        raise UnknownRewardError(_unknown_message(name))
    _check_kwargs(name, factory, kwargs)
    fn = factory(**kwargs)
    if isinstance(fn, ValidatedReward):
        fn = fn.fn  # a factory that validates itself: keep a single layer, under the registry name
    if not callable(fn):
        raise RewardError(
            f"the factory of reward {name!r} ({factory!r}) returned {type(fn).__name__}, which is not "
            "callable; a factory must return a reward function fn(prompts, completions, **meta)"
        )
    return ValidatedReward(name, fn)


def _callable_name(fn: Callable[..., Any]) -> str:
    for candidate in (getattr(fn, "name", None), getattr(fn, "__name__", None)):
        if isinstance(candidate, str) and candidate:
            return candidate
    return type(fn).__name__


def resolve(spec: str | Mapping[str, Any] | RewardFn | ValidatedReward, **kwargs: Any) -> ValidatedReward:
    """Turn a reward specification into a ``ValidatedReward``; call it once, when building an env.

    Args:
        spec: A registered reward name (built with ``make(spec, **kwargs)``), the same as plain data
            ``{"reward": name, **config}`` (``kwargs`` override ``config``; JSON- and YAML-friendly, so Gymnasium
            can serialise an env spec that holds it), a reward function
            ``fn(prompts, completions, **meta)`` (wrapped under its ``name`` attribute, ``__name__`` or
            type name), or a ``ValidatedReward`` (returned unchanged).
        **kwargs: Configuration for a named reward; only allowed when ``spec`` is a name or a mapping.

    Returns:
        The validated reward.

    Raises:
        TypeError: If ``spec`` is of another type, is a class rather than an instance, or ``kwargs`` are
            given with a ``spec`` that is not a name.
        UnknownRewardError: If ``spec`` is a name that is not registered.
        RewardConfigError: If a mapping has no registered name under ``"reward"``.
    """
    if isinstance(spec, str):
        return make(spec, **kwargs)
    if isinstance(spec, Mapping):
        config = dict(spec)
        name = config.pop("reward", None)
        if not isinstance(name, str):
            raise RewardConfigError(
                f"a reward given as a mapping needs the registered name under 'reward', e.g. "
                f"{{'reward': 'length', 'target': 20}}; got {dict(spec)!r}"
            )
        return make(name, **{**config, **kwargs})
    if isinstance(spec, ValidatedReward):
        if kwargs:
            raise TypeError(
                f"rewards.resolve: got keyword arguments {sorted(kwargs)} with the already built reward "
                f"{spec.name!r}; keyword arguments configure a reward given by name only"
            )
        return spec
    if isinstance(spec, type):
        raise TypeError(
            f"rewards.resolve: got the class {spec.__name__}, not a reward function; pass an instance "
            f"such as {spec.__name__}(...) or a registered name (see rewards.names())"
        )
    if callable(spec):
        name = _callable_name(spec)
        if kwargs:
            raise TypeError(
                f"rewards.resolve: got keyword arguments {sorted(kwargs)} with the reward function {name!r}; "
                "keyword arguments configure a reward given by name only, so configure the function yourself"
            )
        return ValidatedReward(name, spec)
    raise TypeError(
        f"rewards.resolve: cannot use a {type(spec).__name__} ({spec!r}) as a reward; pass a registered "
        "name (a str, see rewards.names()), a function fn(prompts, completions, **meta) -> scores, "
        "or a rewards.ValidatedReward"
    )
