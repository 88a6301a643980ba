# SPDX-License-Identifier: Apache-2.0
"""Framing: attached sync markers, CCSDS pseudo-randomizers and CRCs.

All functions work on ``uint8`` 0/1 bit arrays ``(*batch, n)``, MSB first, and return new arrays
(inputs are never modified).
"""
