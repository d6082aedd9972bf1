"""Read environment variables cheaply on every request.

``os.environ.get()`` encodes the name and decodes the value through
several Python calls.  On CPython, os.environ keeps its items in the
dict ``os.environ._data`` keyed by the encoded name, and every change made
through os.environ updates that dict, so a lookup there returns what
os.environ.get() returns.  Elsewhere this falls back to os.environ.get().
"""
from __future__ import annotations

import os

__all__ = ['environ_dict', 'getenv', 'stored_value_reader']

_data = getattr(os.environ, '_data', None)
_encode_key = getattr(os.environ, 'encodekey', None)
_decode_value = getattr(os.environ, 'decodevalue', None)
_encoded_names: dict[str, object] = {}
# name -> (stored value, decoded value) of the last lookup: a changed
# variable gets a new stored object, so an identical one needs no decoding.
_decoded: dict[str, tuple] = {}


def _fast_getenv(name: str) -> str | None:
    key = _encoded_names.get(name)
    if key is None:
        key = _encoded_names[name] = _encode_key(name)
    value = _data.get(key)
    if value is None:
        return None
    last = _decoded.get(name)
    if last is not None and last[0] is value:
        return last[1]
    decoded = _decode_value(value)
    _decoded[name] = (value, decoded)
    return decoded


if isinstance(_data, dict) and _encode_key and _decode_value:
    getenv = _fast_getenv
else:
    getenv = os.environ.get


def stored_value_reader(name: str):
    """Return (get, key) such that ``get(key)`` is the stored value of the
    variable *name*, or None when it is not set.

    The stored value is bytes on CPython (the str from os.environ
    elsewhere): not for display, but equal values mean equal variables,
    so it serves as a cache key without a Python call per lookup.
    """
    if getenv is _fast_getenv:
        return _data.get, _encode_key(name)
    return os.environ.get, name


def environ_dict() -> dict | None:
    """Return the dict that contains os.environ's items (see above), or None
    where os.environ keeps them otherwise.

    Its ``_mwcomms.dict_version`` changes whenever os.environ changes, so
    a value derived from the environment can be kept until then.
    """
    return _data if getenv is _fast_getenv else None
