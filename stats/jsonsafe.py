"""Strict-JSON copies of statistics (NaN and infinities made explicit).

Conventions and definitions: the package docstring (:mod:`stats`) and ``docs/reference/statistics.md``.
"""


from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np

# ---------------------------------------------------------------------------------------------
# strict JSON
# ---------------------------------------------------------------------------------------------

def _json_float(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if value == math.inf:
        return "inf"
    if value == -math.inf:
        return "-inf"
    return value


def _json_key(key: Any) -> str | int | float | bool | None:
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, float):
        converted = _json_float(key)
        return "nan" if converted is None else converted
    if key is None or isinstance(key, (str, int, bool)):
        return key
    return str(key)


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts.

    NaN -> ``None``; ``inf`` -> ``"inf"``; ``-inf`` -> ``"-inf"``; numpy scalars -> Python scalars;
    arrays, tuples, lists, sets (sorted when possible) -> lists; mappings -> dicts (keys: str/int/
    float/bool/None kept, non-finite float keys as strings, anything else ``str``); dataclasses ->
    dicts; paths and any other object -> ``str``.
    """
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()] if obj.ndim else json_safe(obj.item())
    if isinstance(obj, Mapping):
        return {_json_key(k): json_safe(v) for k, v in obj.items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(asdict(obj))
    if isinstance(obj, (set, frozenset)):
        try:
            obj = sorted(obj)
        except TypeError:
            obj = list(obj)
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    return str(obj)
