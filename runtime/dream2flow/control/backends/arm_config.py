"""Parsing of a real arm backend's TOML table (``[polymetis]``, ``[libfranka]``): one set of rules
for every arm, so a typo or a wrong type reads the same whichever robot the cell has."""

from __future__ import annotations

from typing import Any

from dream2flow.errors import InvalidInput


def parse_keys(d: dict[str, Any], where: str, keys: dict[str, type],
               gripper_keys: dict[str, tuple[str, type]]) -> dict[str, Any]:
    """Top-level ``keys`` (name -> type) and a ``[gripper]`` table (key -> (field name, type)) ->
    the config fields they set. Unknown keys and wrong types are ``InvalidInput`` naming ``where``."""
    values: dict[str, Any] = {}
    for k, v in d.items():
        if k == "gripper":
            if not isinstance(v, dict):
                raise InvalidInput(f"{where}: [gripper] must be a table")
            for gk, gv in v.items():
                if gk not in gripper_keys:
                    raise InvalidInput(f"{where}: unknown key 'gripper.{gk}' (known: {', '.join(gripper_keys)})")
                name, typ = gripper_keys[gk]
                values[name] = typed(gv, typ, f"{where}: 'gripper.{gk}'")
            continue
        if k not in keys:
            raise InvalidInput(f"{where}: unknown key '{k}' (known: {', '.join(keys)}, [gripper])")
        values[k] = typed(v, keys[k], f"{where}: '{k}'")
    return values


def typed(v: Any, typ: type, what: str) -> Any:
    """``v`` as ``typ`` (an int is a float; a bool is neither), else ``InvalidInput``."""
    if typ is float and isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if typ is int and isinstance(v, int) and not isinstance(v, bool):
        return v
    if typ in (bool, str, list) and isinstance(v, typ):
        return v
    raise InvalidInput(f"{what} must be a {typ.__name__}, got {v!r}")
