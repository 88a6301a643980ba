# SPDX-License-Identifier: Apache-2.0
"""Software-defined optical modem: CCSDS 142.0-B-1 SCPPM and DVB-S2 LDPC / DPSK chains.

Conventions used throughout (pinned here, repeated in docstrings):

* bits are ``uint8`` arrays of 0/1, MSB first on the wire;
* every stage takes ``(*batch, n_in)`` and returns ``(*batch, n_out)``;
* LLRs are ``float32``/``float64`` with **positive LLR meaning bit 0**: ``llr = ln P(b=0)/P(b=1)``;
* PPM symbol ``s`` means a pulse in slot ``s`` of the symbol, slot 0 transmitted first.
"""
from .errors import BackendUnavailable, CaptureFormatError, ConfigError, ModemError, ShapeError

__version__ = "0.1.0"
__all__ = ["ModemError", "ConfigError", "ShapeError", "CaptureFormatError", "BackendUnavailable",
           "__version__"]
