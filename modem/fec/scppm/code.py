# SPDX-License-Identifier: Apache-2.0
"""The SCPPM code specification of CCSDS 142.0-B-1 (High Photon Efficiency), as one frozen object.

Every stage of the SCPPM chain takes an :class:`SCPPMCode` and never loose numbers. Parameters the
standard fixes are properties; parameters the public sources leave unconfirmed (channel interleaver
N and B, repetition unit, CSM table, accumulator reset, PPM bit order) are named, documented fields
or documented conventions (see ``shared/reference/hpe-scppm.md`` section 6).

Bit order: MSB first everywhere. Codeword: 15120 coded bits = S = 15120/log2(M) PPM symbols.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ...errors import ConfigError

#: Allowed PPM orders (CCSDS 142.0-B-1 Table 5-1).
PPM_ORDERS = (4, 8, 16, 32, 64, 128, 256)
#: Information block length k per code rate (Table 3-1).
K_INFO = {"1/3": 5006, "1/2": 7526, "2/3": 10046}
#: Puncturing patterns over the serial mother-code output c0(t) c1(t) c2(t) c0(t+1) c1(t+1) c2(t+1),
#: 1 = keep (Table 3-2).
PUNCTURE = {"1/3": (1, 1, 1, 1, 1, 1), "1/2": (1, 1, 0, 1, 1, 0), "2/3": (1, 1, 0, 0, 1, 0)}
#: Coded bits per SCPPM codeword (after puncturing) = bit interleaver length.
N_CODED = 15120
#: Repetition factors allowed by Table 5-1 (per the reference's secondary source).
REPETITIONS = (1, 2, 3, 4, 8, 16, 32)
#: CCSDS attached sync marker placed in front of every transfer frame (3.3).
ASM_HPE = 0x1ACFFC1D
CRC_BITS = 32
TERM_BITS = 2


@functools.lru_cache(maxsize=None)
def _csm_table() -> dict:
    with resources.files(__package__).joinpath("tables/csm.json").open() as f:
        return json.load(f)


def _qpp(f1: int, f2: int) -> np.ndarray:
    """Quadratic permutation polynomial (f1 j + f2 j^2) mod 15120, read-only int64 (15120,)."""
    j = np.arange(N_CODED, dtype=np.int64)
    p = (f1 * j + f2 * j * j) % N_CODED
    p.setflags(write=False)
    return p


@functools.lru_cache(maxsize=None)
def bit_interleaver() -> np.ndarray:
    """pi(j) = (11 j + 210 j^2) mod 15120 (3.8.3); ``out[j] = in[pi[j]]``. Read-only int64 (15120,)."""
    return _qpp(11, 210)


@functools.lru_cache(maxsize=None)
def bit_deinterleaver() -> np.ndarray:
    """pi^-1(j) = (14891 j + 210 j^2) mod 15120; ``x[j] = y[pinv[j]]`` undoes :func:`bit_interleaver`."""
    return _qpp(14891, 210)


@dataclass(frozen=True)
class SCPPMCode:
    """SCPPM code and waveform parameters (CCSDS 142.0-B-1).

    Parameters
    ----------
    M : PPM order, one of 4, 8, 16, 32, 64, 128, 256.
    rate : outer code rate "1/3", "1/2" or "2/3" (also accepts the Fraction-like strings only).
    interleaver_rows : channel interleaver rows N (3.9). 1 = no channel interleaving. [NC]
    interleaver_shift : channel interleaver shift increment B in PPM symbols (row j delays j*N*B
        symbol periods). [NC]
    check_interleaver_multiple : enforce B*N = 0 (mod S) (single-source rule) and N | S (on by
        default). The commutator runs on across codewords, so codeword c starts in row (c S) mod N;
        a receiver that locks on a codeword (or restarts after a hole) assumes row 0, which holds
        for every codeword only when N divides S (:meth:`commutator_aligned`).
    repetition : repeat factor q_d (3.11), one of 1, 2, 3, 4, 8, 16, 32.
    repeat_unit : "symbol" (each PPM symbol and its guard slots sent q_d times in a row) or
        "codeword" (each CSM-marked codeword sent q_d times). [NC: the standard's unit is not
        confirmed by the public sources]
    guard_slots : True for the standard's M/4 inter-symbol guard slots (3.13).
    csm : True to prepend the codeword synchronization marker (3.10).
    """

    M: int = 16
    rate: str = "1/2"
    interleaver_rows: int = 1
    interleaver_shift: int = 0
    check_interleaver_multiple: bool = True
    repetition: int = 1
    repeat_unit: str = "symbol"
    guard_slots: bool = True
    csm: bool = True

    def __post_init__(self):
        if isinstance(self.M, bool) or not isinstance(self.M, (int, np.integer)) or int(self.M) not in PPM_ORDERS:
            raise ConfigError(f"SCPPMCode: M must be one of {PPM_ORDERS}, got M={self.M!r}")
        object.__setattr__(self, "M", int(self.M))
        rate = str(self.rate).replace(" ", "")
        if rate not in K_INFO:
            raise ConfigError(f"SCPPMCode: rate must be one of {tuple(K_INFO)}, got rate={self.rate!r}")
        object.__setattr__(self, "rate", rate)
        for name in ("guard_slots", "csm", "check_interleaver_multiple"):
            flag = getattr(self, name)
            if not isinstance(flag, (bool, np.bool_)):   # "no" would have been read as on
                raise ConfigError(f"SCPPMCode: {name} must be True or False, got {name}={flag!r}")
            object.__setattr__(self, name, bool(flag))
        N, B = self.interleaver_rows, self.interleaver_shift
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
            raise ConfigError(f"SCPPMCode: interleaver_rows N must be an integer >= 1, got N={N!r}")
        if isinstance(B, bool) or not isinstance(B, (int, np.integer)) or B < 0 or (N > 1 and B < 1):
            raise ConfigError(f"SCPPMCode: interleaver_shift B must be >= 1 when N > 1 (>= 0 otherwise), got B={B!r}")
        if N > 1 and self.check_interleaver_multiple and (B * N) % self.S:
            raise ConfigError(f"SCPPMCode: B*N must be a multiple of S={self.S} symbols (got B={B}, N={N}, "
                              f"B*N={B * N}); pass check_interleaver_multiple=False to lift this unconfirmed rule")
        if self.check_interleaver_multiple and not self.commutator_aligned:
            raise ConfigError(f"SCPPMCode: interleaver_rows N={N} must divide S={self.S} (M={self.M}): otherwise "
                              "a codeword may start in any commutator row and a receiver that locks on one (or "
                              "restarts after a hole) de-interleaves it with the wrong rows; pass "
                              "check_interleaver_multiple=False for a loopback that starts with codeword 0")
        q = self.repetition
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q not in REPETITIONS:
            raise ConfigError(f"SCPPMCode: repetition must be one of {REPETITIONS}, got repetition={self.repetition!r}")
        if self.repeat_unit not in ("symbol", "codeword"):
            raise ConfigError(f"SCPPMCode: repeat_unit must be 'symbol' or 'codeword', got {self.repeat_unit!r}")

    # --- fixed by the standard -------------------------------------------------------------
    @property
    def m(self) -> int:
        """Bits per PPM symbol, log2 M."""
        return self.M.bit_length() - 1

    @property
    def k(self) -> int:
        """Information bits per codeword (slicer block length)."""
        return K_INFO[self.rate]

    @property
    def k_hat(self) -> int:
        """Outer encoder input length k + 32 (CRC) + 2 (termination)."""
        return self.k + CRC_BITS + TERM_BITS

    @property
    def n_mother(self) -> int:
        """Rate-1/3 mother code output length 3*k_hat, before puncturing."""
        return 3 * self.k_hat

    @property
    def n(self) -> int:
        """Coded bits per codeword after puncturing (15120)."""
        return N_CODED

    @property
    def S(self) -> int:
        """PPM symbols per codeword, 15120 / log2 M."""
        return N_CODED // self.m

    @property
    def puncture(self) -> np.ndarray:
        return np.array(PUNCTURE[self.rate], dtype=np.uint8)

    @property
    def kept_positions(self) -> np.ndarray:
        """Indices into the serial mother-code output that survive puncturing (length 15120)."""
        mask = np.resize(self.puncture, self.n_mother).astype(bool)
        return np.flatnonzero(mask)

    @property
    def csm_symbols(self) -> np.ndarray:
        """Codeword synchronization marker symbols (empty when ``csm`` is off)."""
        if not self.csm:
            return np.zeros(0, dtype=np.int64)
        t = _csm_table()
        key = str(self.M) if self.M < 16 else "16+"
        return np.array(t[key], dtype=np.int64)

    @property
    def L_csm(self) -> int:
        return len(self.csm_symbols)

    @property
    def guard(self) -> int:
        """Guard slots after every PPM symbol (M/4, or 0 when disabled)."""
        return self.M // 4 if self.guard_slots else 0

    @property
    def slots_per_symbol(self) -> int:
        return self.M + self.guard

    @property
    def symbols_per_codeword(self) -> int:
        """Transmitted PPM symbols per codeword, CSM included, before repetition."""
        return self.S + self.L_csm

    @property
    def slots_per_codeword(self) -> int:
        """Transmitted slots per codeword (CSM, guard slots and repetition included)."""
        return self.symbols_per_codeword * self.slots_per_symbol * self.repetition

    @property
    def commutator_aligned(self) -> bool:
        """Every codeword starts in channel-interleaver row 0 (N divides S, or no interleaver)."""
        return self.S % self.interleaver_rows == 0

    @property
    def interleaver_delay(self) -> int:
        """End-to-end channel interleaver latency B*N*(N-1) in PPM symbols."""
        return self.interleaver_shift * self.interleaver_rows * (self.interleaver_rows - 1)

    def info_rate(self, slot_width_s: float) -> float:
        """Information bits per second for a slot width in seconds."""
        return self.k / (self.slots_per_codeword * slot_width_s)

    def describe(self) -> dict:
        return {"M": self.M, "rate": self.rate, "k": self.k, "S": self.S, "L_csm": self.L_csm,
                "interleaver_rows": self.interleaver_rows, "interleaver_shift": self.interleaver_shift,
                "repetition": self.repetition, "repeat_unit": self.repeat_unit,
                "guard_slots": self.guard, "slots_per_codeword": self.slots_per_codeword}
