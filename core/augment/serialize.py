"""Pipelines as data: dicts, JSON files and TOML files that round-trip exactly.

A transform is written as ``{"name": "Affine", "rotate": 15.0, ...}`` with
its constructor arguments; containers carry their children under
``"transforms"``. In TOML the children are arrays of tables::

    name = "Compose"
    seed = 0
    [[transforms]]
    name = "HorizontalFlip"
    p = 0.5
    [[transforms]]
    name = "OneOf"
    [[transforms.transforms]]
    name = "GaussianBlur"

TOML has no null: arguments whose value is None are left out (every such
argument defaults to None). Reading TOML needs Python 3.11's ``tomllib``
(or the ``tomli`` package on 3.10); writing is done here.
"""
from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

from core.augment.base import Transform, _plain
from core.augment.registry import arguments, get_class

_EMPTY = inspect.Parameter.empty


def to_dict(transform: Transform) -> dict:
    """The JSON-able description of ``transform`` (containers recursively)."""
    if not isinstance(transform, Transform):
        raise TypeError(f"to_dict: expected a Transform, got {type(transform).__name__}")
    out = {"name": type(transform).__name__}
    for key, value in transform.get_args().items():
        if key == "transforms":
            out[key] = [to_dict(t) for t in value]
        else:
            out[key] = _plain(value)
    return out


def from_dict(spec: dict, where: str = "pipeline") -> Transform:
    """Build a transform from ``to_dict`` output; unknown names/arguments raise ``ValueError``."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a transform must be a table/object, got {type(spec).__name__}")
    spec = dict(spec)
    if "name" not in spec:
        raise ValueError(f"{where}: a transform needs a 'name', got keys {sorted(spec)}")
    name = spec.pop("name")
    cls = get_class(name, where)
    accepted = arguments(cls)
    unknown = sorted(set(spec) - set(accepted))
    if unknown:
        raise ValueError(f"{where} ({name}): unknown parameter(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(accepted)}")
    missing = [k for k, d in accepted.items() if d is _EMPTY and k not in spec]
    if missing:
        raise ValueError(f"{where} ({name}): missing required parameter(s) {', '.join(missing)}")
    if "transforms" in spec:
        children = spec["transforms"]
        if not isinstance(children, list):
            raise ValueError(f"{where} ({name}): transforms must be a list, got {type(children).__name__}")
        spec["transforms"] = [from_dict(c, f"{where}.transforms[{i}]") for i, c in enumerate(children)]
    try:
        return cls(**spec)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- TOML writer
def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _toml_value(value, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    raise ValueError(f"{where}: cannot write {type(value).__name__} {value!r} to TOML")


def _toml_table(spec: dict, prefix: str, lines: list, where: str) -> None:
    children = None
    for key, value in spec.items():
        if key == "transforms":
            children = value
        elif value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value, f'{where}.{key}')}")
    for i, child in enumerate(children or []):
        path = f"{prefix}.transforms" if prefix else "transforms"
        lines.append("")
        lines.append(f"[[{path}]]")
        _toml_table(child, path, lines, f"{where}.transforms[{i}]")


def dumps_toml(spec: dict) -> str:
    """TOML text for a ``to_dict`` spec (None values omitted)."""
    lines: list[str] = []
    _toml_table(spec, "", lines, spec.get("name", "pipeline"))
    return "\n".join(lines) + "\n"


def loads_toml(text: str, where: str = "pipeline") -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore
        except ModuleNotFoundError:
            raise RuntimeError(f"{where}: reading TOML needs Python >= 3.11 or the 'tomli' package "
                               "(pip install tomli); JSON pipelines work everywhere") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: invalid TOML: {exc}") from None


# --------------------------------------------------------------------------- files
def _format_of(path: Path, fmt: str | None, where: str) -> str:
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in ("json", "toml"):
        raise ValueError(f"{where}: pipeline file must end in .json or .toml (or pass format=), got {path.name!r}")
    return fmt


def save_pipeline(transform: Transform, path, format: str | None = None) -> None:
    """Write ``transform`` to ``path`` as JSON or TOML (chosen by the suffix unless ``format``)."""
    from core.serialization import atomic_write_bytes

    path = Path(path)
    fmt = _format_of(path, format, "save_pipeline")
    spec = to_dict(transform)
    if fmt == "json":
        text = json.dumps(spec, indent=2) + "\n"
    else:
        text = dumps_toml(spec)
    atomic_write_bytes(path, text.encode("utf-8"))


def load_pipeline(path, format: str | None = None) -> Transform:
    """Read a pipeline written by ``save_pipeline`` (or by hand) and build it."""
    path = Path(path)
    where = str(path)
    fmt = _format_of(path, format, where)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{where}: cannot read pipeline file: {exc.strerror or exc}") from None
    if fmt == "json":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: invalid JSON: {exc}") from None
    else:
        spec = loads_toml(text, where)
    return from_dict(spec, where)
