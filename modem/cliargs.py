# SPDX-License-Identifier: Apache-2.0
"""Small argument helpers shared by the subcommands (kept out of ``modem.cli`` so that the modules
that register subcommands can import them without a cycle)."""
from __future__ import annotations

import json

from .errors import ConfigError


def parse_key_values(items, option: str = "--param") -> dict:
    """``["ns=2.4", "scid=66", "frame=normal"]`` -> ``{"ns": 2.4, "scid": 66, "frame": "normal"}``.

    Each value is read as JSON when it parses (numbers, booleans, lists), else kept as a string.
    An item without ``=`` raises ConfigError naming the option and the item.
    """
    out = {}
    for it in items or ():
        if "=" not in it:
            raise ConfigError(f"{option} must be KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out
