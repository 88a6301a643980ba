# SPDX-License-Identifier: Apache-2.0
"""Exception hierarchy of the modem.

Bad parameters and bad input raise these; channel failures (a failed CRC, a decoder that did not
converge) are never exceptions: they are results, counted and reported.
"""


class ModemError(Exception):
    """Base class of every error the modem raises on purpose."""


class ConfigError(ModemError, ValueError):
    """A parameter is out of its allowed range (message names class, parameter, range, value)."""


class ShapeError(ModemError, ValueError):
    """An array has the wrong shape, dtype or content for the stage it was given to."""


class CaptureFormatError(ModemError, ValueError):
    """A capture file is corrupt, truncated or inconsistent with its metadata."""


class BackendUnavailable(ModemError, RuntimeError):
    """The requested compute backend cannot run here (the message says why)."""
