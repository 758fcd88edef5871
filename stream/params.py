"""Declared node parameters: each node kind lists what it accepts once, in its class.

A node class sets ``PARAMS = (Param(...), ...)`` (a subclass extends its parent's with
``PARAMS = Parent.PARAMS + (...)``).  The launcher checks a graph's parameters against these
declarations before any process starts, ``rram-lsm kinds`` prints them, and ``Node.param``
reads a value or its declared default.  A class that declares no PARAMS of its own (a user's
``module:Class`` kind) is not checked.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of a parameter that must be given
PATH_KINDS = ("file", "dir", "exists", "out")


@dataclass(frozen=True)
class Param:
    """One parameter: name, accepted type(s), default, unit and a one-line meaning.

    ``path``: ``file`` / ``dir`` / ``exists`` (file or folder) must exist where the node runs;
    ``out`` is a file the node writes, whose folder must be writable (or creatable).  A default
    of None means "optional, unset"; None is then accepted as a value too.
    """

    name: str
    type: type | tuple[type, ...]
    default: Any = REQUIRED
    unit: str = ""
    doc: str = ""
    choices: tuple | None = None
    path: str | None = None

    def __post_init__(self):
        if self.path is not None and self.path not in PATH_KINDS:
            raise ValueError(f"Param {self.name!r}: path must be one of {PATH_KINDS}")

    @property
    def types(self) -> tuple[type, ...]:
        t = self.type if isinstance(self.type, tuple) else (self.type,)
        extra = (int,) if float in t else ()  # a float parameter takes 3 as well as 3.0
        extra += (tuple,) if list in t else ()  # Python callers pass tuples for lists
        return t + extra

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def type_name(self) -> str:
        t = self.type if isinstance(self.type, tuple) else (self.type,)
        names = ["None" if x is type(None) else x.__name__ for x in t]
        return " | ".join(names) + (" | None" if self.default is None else "")

    def check(self, value: Any, where: str) -> None:
        """Raise ConfigError (naming ``where`` and the parameter) unless ``value`` fits."""
        if value is None and self.default is None:
            return
        ok = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if not ok:
            raise ConfigError(f"{where}: parameter {self.name!r} must be {self.type_name()}, got {value!r}")
        if self.choices is not None and not isinstance(value, (dict, list, tuple)) \
                and value not in self.choices:
            raise ConfigError(f"{where}: parameter {self.name!r} must be one of "
                              f"{', '.join(map(repr, self.choices))}; got {value!r}")


def declared(cls) -> dict[str, Param] | None:
    """A node class's declared parameters by name, or None if it declares none of its own."""
    if "PARAMS" not in vars(cls) or cls.PARAMS is None:
        return None
    return {p.name: p for p in cls.PARAMS}


def inherited(cls) -> dict[str, Param]:
    """The declarations a class reads defaults from (its own, or its nearest parent's)."""
    return {p.name: p for p in (getattr(cls, "PARAMS", None) or ())}


def nearest(key: str, names) -> str | None:
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return close[0] if close else None


def check_params(cls, params: dict[str, Any], where: str) -> None:
    """Unknown keys (with the nearest known one), types, choices and required parameters."""
    decl = declared(cls)
    if decl is None:
        return
    for key, value in params.items():
        if key not in decl:
            near = nearest(key, decl)
            hint = f"did you mean {near!r}? " if near else ""
            raise ConfigError(f"{where}: unknown parameter {key!r}; {hint}"
                              f"known: {', '.join(sorted(decl)) or '(none)'}")
        decl[key].check(value, where)
    missing = [f"{p.name!r} ({p.doc})" for p in decl.values() if p.required and p.name not in params]
    if missing:
        raise ConfigError(f"{where}: required parameter(s) missing: {', '.join(missing)}")


def check_paths(cls, params: dict[str, Any], where: str) -> None:
    """Declared input paths exist and output folders can be written (on this machine)."""
    for p in (declared(cls) or {}).values():
        value = params.get(p.name, None if p.required else p.default)
        if p.path is None or value is None:
            continue
        values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str):
                continue  # a wrong type is check_params' to report
            problem = path_problem(Path(v), p.path)
            if problem:
                raise ConfigError(f"{where}: parameter {p.name!r}: {v}: {problem}")


def path_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` does not suit a ``kind`` parameter, or None."""
    if kind == "file" and not path.is_file():
        return "no such file" if not path.exists() else "not a file"
    if kind == "dir" and not path.is_dir():
        return "no such folder" if not path.exists() else "not a folder"
    if kind == "exists" and not path.exists():
        return "no such file or folder"
    if kind == "out":
        if path.is_dir():
            return "is a folder, not a file"
        if path.exists() and not os.access(path, os.W_OK):
            return "not writable"
        folder = path.parent.absolute()
        while not folder.exists():  # the node creates missing folders: check the first that exists
            folder = folder.parent
        if not folder.is_dir():
            return f"cannot create its folder: {folder} is not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"folder {folder} is not writable"
    return None
