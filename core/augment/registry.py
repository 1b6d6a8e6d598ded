"""Name -> transform class, so pipelines can be written down (JSON/TOML) and rebuilt.

Every public transform registers itself once with ``@register``; the
serializer and the invariant tests iterate over this table.
"""
from __future__ import annotations

import difflib
import inspect

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make ``cls`` constructible by name from a pipeline file."""
    name = cls.__name__
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"register: a transform named {name!r} is already registered")
    _REGISTRY[name] = cls
    return cls


def available(kind: str | None = None) -> list[str]:
    """Sorted names of registered transforms, optionally only one ``kind``
    ("geometric", "pixel", "container", "batch")."""
    return sorted(n for n, c in _REGISTRY.items() if kind is None or c.kind == kind)


def get_class(name: str, where: str = "pipeline") -> type:
    """The class registered as ``name``; unknown names raise ``ValueError`` with suggestions."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(available())}"
        raise ValueError(f"{where}: unknown transform {name!r}{hint}") from None


def arguments(name_or_cls) -> dict[str, object]:
    """Constructor arguments of a transform and their defaults (``inspect.Parameter.empty`` if required)."""
    cls = get_class(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    sig = inspect.signature(cls.__init__)
    return {n: p.default for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
