# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 FEC (ETSI EN 302 307-1): BCH outer code + LDPC inner code, all 21 normal/short codes.

Encoders turn information bits ``u (..., k)`` into codewords ``c (..., n)`` = [u, BCH parity,
LDPC parity]; decoders turn LLRs ``(..., n)`` (positive = bit 0) into ``u_hat (..., k)`` plus per-frame
``parity_ok``, ``bch_corrected``, ``valid`` and ``iterations``.

    >>> from modem.fec import dvbs2
    >>> c = dvbs2.code("normal", "1/2")      # cached spec; c.k = 32208, c.n = 64800
"""
from .bch import BCHCode
from .code import (ALGORITHMS, NORMAL_RATES, SHORT_RATES, DecodeResult, DVBS2Code, all_codes,
                   code, load_table)
from .ldpc import LDPCGraph

__all__ = ["code", "all_codes", "DVBS2Code", "DecodeResult", "BCHCode", "LDPCGraph", "load_table",
           "NORMAL_RATES", "SHORT_RATES", "ALGORITHMS"]
