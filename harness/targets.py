"""Resolving a plugin's ``"package.module:Name"`` target, imported only when the plugin is used."""

from __future__ import annotations

import importlib


def import_target(target: str, base: type, what: str) -> type:
    """The class ``target`` names, refused unless it subclasses ``base`` (``what`` names the plugin in errors)."""
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{what}: {target} is not a {base.__module__}.{base.__qualname__} subclass")
    return cls
