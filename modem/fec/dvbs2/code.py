# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 FEC code specification: BCH outer + LDPC inner code, ETSI EN 302 307-1 V1.4.1, 5.3.

``code(frame, rate)`` returns the (cached) frozen :class:`DVBS2Code` of one of the 21 codes:
normal FECFRAME (n = 64800) rates 1/4 1/3 2/5 1/2 3/5 2/3 3/4 4/5 5/6 8/9 9/10, short FECFRAME
(n = 16200) rates 1/4 .. 8/9 (no 9/10). The rate is the standard's nominal label; for several
short codes K_ldpc/n differs from it (e.g. short "1/2" has K_ldpc/n = 4/9).

Codeword order (the standard's): ``[u (k = K_bch), BCH parity (K_ldpc - K_bch), LDPC parity
(n - K_ldpc)]``. LLRs: **positive = bit 0**.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources

import numpy as np

from ...backend import get_array_module, results_to_host, to_numpy
from ...errors import ConfigError, ShapeError
from ...framing.bits import check_bits
from .bch import BCHCode
from .ldpc import LLR_CLIP, LDPCGraph

FRAMES = ("normal", "short")
NORMAL_RATES = ("1/4", "1/3", "2/5", "1/2", "3/5", "2/3", "3/4", "4/5", "5/6", "8/9", "9/10")
SHORT_RATES = NORMAL_RATES[:10]

# (K_ldpc, K_bch, t): EN 302 307-1 Table 5a (normal) and 5b (short).
_PARAMS = {
    ("normal", "1/4"): (16200, 16008, 12),
    ("normal", "1/3"): (21600, 21408, 12),
    ("normal", "2/5"): (25920, 25728, 12),
    ("normal", "1/2"): (32400, 32208, 12),
    ("normal", "3/5"): (38880, 38688, 12),
    ("normal", "2/3"): (43200, 43040, 10),
    ("normal", "3/4"): (48600, 48408, 12),
    ("normal", "4/5"): (51840, 51648, 12),
    ("normal", "5/6"): (54000, 53840, 10),
    ("normal", "8/9"): (57600, 57472, 8),
    ("normal", "9/10"): (58320, 58192, 8),
    ("short", "1/4"): (3240, 3072, 12),
    ("short", "1/3"): (5400, 5232, 12),
    ("short", "2/5"): (6480, 6312, 12),
    ("short", "1/2"): (7200, 7032, 12),
    ("short", "3/5"): (9720, 9552, 12),
    ("short", "2/3"): (10800, 10632, 12),
    ("short", "3/4"): (11880, 11712, 12),
    ("short", "4/5"): (12600, 12432, 12),
    ("short", "5/6"): (13320, 13152, 12),
    ("short", "8/9"): (14400, 14232, 12),
}

#: "minsum": layered min-sum, the 360 checks of a layer at once in 16-bit fixed point (the fast CPU
#: kernel); "minsum-serial": layered min-sum in float32, one check after the other (in a layer where a
#: variable meets two checks, the second sees the first one's update); "sum-product": the float64
#: accuracy reference.
ALGORITHMS = ("minsum", "sum-product", "minsum-serial")
#: the algorithms with a CUDA kernel (``launcher=`` / CuPy input); the others decode on the CPU only
GPU_ALGORITHMS = ("minsum", "minsum-serial")
#: Normalized min-sum check-node scale, by check-node degree: min-sum overestimates check messages
#: more the more inputs a check has, so low-degree checks want a scale nearer 1. Measured on normal
#: frames (tests/test_dvbs2_accuracy.py, bench/ldpc_fer_curves.py): rate 1/4 (degree 4) fails
#: completely at 0.8 (500/500 frame errors at QEF + 0.4 dB) and works at 0.875; rate 1/2 (degree 7)
#: loses about 0.3 dB to sum-product at 0.875 and 0.16 dB at 0.8.
SCALE_LOW_DEGREE = 0.875     # check-node degree <= 6 (normal 1/4, 1/3, 2/5 and their short twins)
SCALE_HIGH_DEGREE = 0.8      # check-node degree >= 7
DEFAULT_SCALE = None         # decode(scale=None) uses DVBS2Code.minsum_scale
#: 'minsum' (16-bit) input guard. The kernel maps each frame's MEAN |LLR| (over all n bits) to
#: FIXED_POINT_MEAN (1024). A few huge LLRs (known bits, values at LLR_CLIP) inflate that mean until
#: the ordinary LLRs round to 0/+-1 and the frame fails. Where the mean exceeds OUTLIER_RATIO x the
#: 90th percentile q90 of the frame's non-zero |LLR| (only a minority of at most 10 % can do that),
#: the frame is first clipped at the level C where mean(min(|LLR|, C)) = OUTLIER_RATIO x q90: its
#: typical LLRs then keep about 32 levels; every other frame reaches the kernel unchanged.
OUTLIER_RATIO = 16.0
# LLR_CLIP (defined in ldpc.py): channel LLR magnitudes are clipped there (float32 head-room for the sums)


def _clip_outliers(flat, xp):
    """The 'minsum' input guard (see OUTLIER_RATIO) on the (B, n) float32 LLRs ``flat`` of module
    ``xp``: returns ``flat`` itself when no frame needs it, else a copy with those frames clipped."""
    nfr, n = flat.shape
    if nfr == 0:
        return flat
    ratio = OUTLIER_RATIO
    if xp is np:
        from . import _cpu  # noqa: PLC0415
        rows = np.flatnonzero(_cpu.llr_outlier_rows(flat, LLR_CLIP, ratio))
    else:
        a = xp.minimum(xp.abs(flat), np.float32(LLR_CLIP))
        thr = (a.sum(axis=1, dtype=np.float64) / (ratio * n)).astype(np.float32)[:, None]   # as the CPU
        rows = xp.flatnonzero(10 * xp.count_nonzero(a >= thr, axis=1) < xp.count_nonzero(a, axis=1))
    if rows.size == 0:
        return flat
    out = flat.copy()
    for r in to_numpy(rows).tolist():
        s = xp.sort(xp.minimum(xp.abs(flat[r]).astype(np.float64), LLR_CLIP))
        nz = s[s > 0]
        target = ratio * float(nz[(9 * (nz.size - 1)) // 10])     # the clipped frame's mean
        cs = xp.cumsum(s)
        if target * n >= float(cs[-1]):
            continue
        f_at = (cs + s * (n - 1 - xp.arange(n))) / n               # mean(min(s, s[i])), non-decreasing
        i = int(xp.argmax(f_at >= target))
        below = float(cs[i - 1]) if i else 0.0
        cap = (target * n - below) / (n - i)
        out[r] = xp.clip(flat[r], -cap, cap)
    return out


def load_table(frame: str, rate: str) -> tuple[tuple[int, ...], ...]:
    """Parity bit address table rows of one code, from ``tables/<frame>_<rate>.txt``."""
    name = f"{frame}_{rate.replace('/', '_')}.txt"
    text = resources.files(__package__).joinpath("tables", name).read_text()
    rows = [tuple(int(x) for x in line.split()) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]
    return tuple(rows)


@dataclass(frozen=True)
class DecodeResult:
    """Outcome of :meth:`DVBS2Code.decode` (channel failures are data, not exceptions).

    u_hat : (..., k) uint8 decoded information bits (after BCH correction).
    parity_ok : (...) bool, the LDPC hard decisions satisfied every parity check.
    bch_corrected : (...) int32, bits corrected by the BCH decoder; -1 where it failed.
    valid : (...) bool, ``parity_ok & (bch_corrected >= 0)``, and at most ``n - k_ldpc`` of the
        frame's LLRs exactly 0: with more erasures than parity bits the received bits do not
        determine the codeword (at least two codewords agree with them), so whatever word the
        decoder settles on (all zeros for a frame of zeros: a gap, padding) is a guess, not data.
    iterations : (...) int32, LDPC iterations run for the frame (0 when the channel hard
        decisions were already a codeword; max_iter where the checks never held).
    """

    u_hat: np.ndarray
    parity_ok: np.ndarray
    bch_corrected: np.ndarray
    valid: np.ndarray
    iterations: np.ndarray


@dataclass(frozen=True)
class DVBS2Code:
    """One DVB-S2 BCH + LDPC code (build it with :func:`code`).

    Attributes: frame ('normal'/'short'), rate (nominal label, e.g. '1/2'), n (64800/16200),
    k_ldpc, k (= K_bch, information bits), t (BCH capability), q = (n - k_ldpc)/360, ``bch``
    (:class:`BCHCode`), ``ldpc`` (:class:`LDPCGraph`), ``table`` (address table rows).
    """

    frame: str
    rate: str
    n: int = field(init=False)
    k_ldpc: int = field(init=False)
    k: int = field(init=False)
    t: int = field(init=False)
    q: int = field(init=False)

    def __post_init__(self):
        if self.frame not in FRAMES:
            raise ConfigError(f"DVBS2Code: frame must be one of {FRAMES}, got frame={self.frame!r}")
        rates = NORMAL_RATES if self.frame == "normal" else SHORT_RATES
        if self.rate not in rates:
            raise ConfigError(f"DVBS2Code: rate for the {self.frame} frame must be one of {rates}, "
                              f"got rate={self.rate!r}")
        k_ldpc, k_bch, t = _PARAMS[(self.frame, self.rate)]
        n = 64800 if self.frame == "normal" else 16200
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "k_ldpc", k_ldpc)
        object.__setattr__(self, "k", k_bch)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "q", (n - k_ldpc) // 360)

    @property
    def code_rate(self) -> Fraction:
        """Actual information rate k / n (BCH and LDPC together)."""
        return Fraction(self.k, self.n)

    @functools.cached_property
    def table(self) -> tuple[tuple[int, ...], ...]:
        return load_table(self.frame, self.rate)

    @functools.cached_property
    def bch(self) -> BCHCode:
        return BCHCode(m=16 if self.frame == "normal" else 14, t=self.t, n=self.k_ldpc)

    @functools.cached_property
    def ldpc(self) -> LDPCGraph:
        g = LDPCGraph(self.table, self.n)
        if g.k != self.k_ldpc:
            raise ConfigError(f"DVBS2Code: table {self.frame} {self.rate} has {len(self.table)} rows, "
                              f"expected {self.k_ldpc // 360}")
        return g

    @functools.cached_property
    def check_degree(self) -> int:
        """Information links per check, rounded up, + 2 parity links: the largest check-node degree
        of every code except short 1/2, 3/4 and 5/6, whose check degrees vary (largest 7, 13, 19;
        here 6, 11, 18). minsum_scale keys on it: short 1/2 gets 0.875, measured better there than
        0.8 (QPSK Es/N0 0.6 dB, 1500 frames: 0 vs 3 frame errors, 17 vs 31 mean iterations)."""
        links = sum(len(r) for r in self.table) * 360
        return -(-links // (self.n - self.k_ldpc)) + 2

    @property
    def minsum_scale(self) -> float:
        """Default normalized min-sum scale of this code (see SCALE_LOW_DEGREE / SCALE_HIGH_DEGREE)."""
        return SCALE_LOW_DEGREE if self.check_degree <= 6 else SCALE_HIGH_DEGREE

    def encode(self, u) -> np.ndarray:
        """Encode information bits.

        Input: u (..., k) uint8 0/1 (any leading shape). Output: c (..., n) uint8 =
        [u, BCH parity, LDPC parity]. Raises ShapeError for a wrong last axis or non-0/1 values.
        """
        u = check_bits(u, self.k, f"DVBS2Code({self.frame} {self.rate}).encode", "u")
        lead = u.shape[:-1]
        flat = np.ascontiguousarray(u.reshape(-1, self.k))
        bch_cw = np.ascontiguousarray(self.bch.encode(flat))
        c = self.ldpc.encode(bch_cw)
        return c.reshape(lead + (self.n,))

    def decode(self, llr, max_iter: int = 50, algorithm: str = "minsum", scale: float = DEFAULT_SCALE,
               offset: float = 0.0, launcher=None) -> DecodeResult:
        """Decode channel LLRs: layered LDPC decoding, then BCH decoding of the LDPC information part.

        Parameters
        ----------
        llr : (..., n) float array, **positive = bit 0** (llr = log P(c=0|y) / P(c=1|y)).
            Magnitudes are clipped at 1e6. NaN/inf raise ShapeError.
        max_iter : LDPC iteration cap (>= 1). Decoding of a frame stops at the first iteration
            after which all parity checks hold.
        algorithm : 'minsum' (layered normalized/offset min-sum on the CPU: one frame per worker
            thread, the 360 checks of a DVB-S2 layer in SIMD lanes, 16-bit fixed point with each
            frame's LLRs scaled to a mean magnitude of 1024), 'minsum-serial' (the same layered
            min-sum in float32, check after check, 32 frames per worker in SIMD lanes; about 3-4x
            slower on the CPU) or 'sum-product' (layered
            exact tanh rule, float64, one frame per thread; the accuracy reference, about 20-40x
            slower than 'minsum-serial').
        scale, offset : min-sum check-node magnitude ``scale * max(min - offset, 0)``; scale None
            (default) takes the code's :attr:`minsum_scale`.

        launcher : where NumPy input is decoded. None (default): the CPU implementation (Numba). A
            kernel launcher (:func:`modem.backend.fec_launcher`, e.g. the GPU's): the CUDA kernels
            ('minsum' and 'minsum-serial' only; 'sum-product' raises BackendUnavailable), the LLRs
            copied to the launcher's device and the results back by this call (explicit here: the
            kernel wrappers never copy), with the same decisions as the CPU path. CuPy input always
            decodes on the GPU (on ``launcher`` where given) and its results stay there.

        Output: :class:`DecodeResult` with u_hat (..., k), parity_ok, bch_corrected, valid,
        iterations (...).
        """
        who = f"DVBS2Code({self.frame} {self.rate}).decode"
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"{who}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ConfigError(f"{who}: max_iter must be an integer >= 1, got {max_iter!r}")
        if scale is None:
            scale = self.minsum_scale
        if not (0.0 < scale <= 1.0) or not (offset >= 0.0):
            raise ConfigError(f"{who}: need 0 < scale <= 1 and offset >= 0, got scale={scale}, offset={offset}")
        if get_array_module(llr) is not np:     # a CuPy array selects the GPU backend
            if launcher is None:
                from ...gpu.launch import default_launcher  # noqa: PLC0415
                launcher = default_launcher()
            return self._decode_device(llr, int(max_iter), algorithm, float(scale), float(offset), launcher)
        if launcher is not None:                # host in, host out; the kernels on the launcher's device
            return results_to_host(self._decode_device(launcher.xp.asarray(np.asarray(llr)), int(max_iter), algorithm,
                                                       float(scale), float(offset), launcher))
        a = np.asarray(llr)
        if a.ndim == 0 or a.shape[-1] != self.n:
            raise ShapeError(f"{who}: llr must have last axis {self.n}, got shape {a.shape}")
        if a.dtype.kind not in "fiu":
            raise ShapeError(f"{who}: llr must be a real float array, got dtype {a.dtype}")
        lead = a.shape[:-1]
        flat = a.reshape(-1, self.n)
        if flat.size and not np.isfinite(flat).all():
            bad = flat[~np.isfinite(flat)].flat[0]
            raise ShapeError(f"{who}: llr must be finite, found value {bad}")
        if flat.dtype.kind == "f" and flat.dtype.itemsize > 4:   # clip before the cast: 1e39 must not become inf
            flat = np.clip(flat, -LLR_CLIP, LLR_CLIP)
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        if algorithm != "minsum":          # the fixed-point min-sum kernel clips as it reads (no copy)
            flat = np.clip(flat, -LLR_CLIP, LLR_CLIP)
        else:
            flat = _clip_outliers(flat, np)
        hard, ok, iters = self.ldpc.decode(flat, int(max_iter), algorithm, float(scale), float(offset))
        info = np.ascontiguousarray(hard[:, :self.k_ldpc])
        corrected = self.bch.decode_inplace(info)
        u_hat = info[:, :self.k]
        valid = ok & (corrected >= 0) & self._determined(flat, np)
        return DecodeResult(u_hat=u_hat.reshape(lead + (self.k,)), parity_ok=ok.reshape(lead),
                            bch_corrected=corrected.reshape(lead), valid=valid.reshape(lead),
                            iterations=iters.reshape(lead))


    def _determined(self, flat, xp):
        """(B,) bool: at most n - k_ldpc of each frame's LLRs (B, n) are erasures (exactly 0)."""
        return xp.count_nonzero(flat == 0, axis=1) <= self.n - self.k_ldpc

    def _decode_device(self, llr, max_iter: int, algorithm: str, scale: float, offset: float, launcher):
        """:meth:`decode` on ``launcher``'s arrays (CuPy on a GPU; NumPy under the tests' host
        emulation): LDPC min-sum and the BCH codeword check run as kernels; words whose BCH
        remainder is non-zero (rare after LDPC convergence) are corrected by the CPU algebraic
        decoder -- only those rows go to the host and back. Outputs are arrays of the same module."""
        who = f"DVBS2Code({self.frame} {self.rate}).decode"
        xp = launcher.xp
        a = llr
        if a.ndim == 0 or a.shape[-1] != self.n:
            raise ShapeError(f"{who}: llr must have last axis {self.n}, got shape {a.shape}")
        if a.dtype.kind not in "fiu":
            raise ShapeError(f"{who}: llr must be a real float array, got dtype {a.dtype}")
        lead = a.shape[:-1]
        flat = a.reshape(-1, self.n)
        if flat.size and not bool(xp.isfinite(flat).all()):
            bad = flat[~xp.isfinite(flat)].ravel()[0]
            raise ShapeError(f"{who}: llr must be finite, found value {bad}")
        if flat.dtype.kind == "f" and flat.dtype.itemsize > 4:   # as decode(): clip before the cast
            flat = xp.clip(flat, -LLR_CLIP, LLR_CLIP)
        flat = xp.ascontiguousarray(flat, dtype=np.float32)
        if algorithm != "minsum":          # as decode(): the fixed-point kernel clips as it reads
            flat = xp.clip(flat, -LLR_CLIP, LLR_CLIP)
        else:
            flat = _clip_outliers(flat, xp)
        hard, ok, iters = self.ldpc.decode_device(flat, max_iter, algorithm, scale, offset, launcher)
        info = xp.ascontiguousarray(hard[:, :self.k_ldpc])
        from . import _gpu  # noqa: PLC0415
        nz = _gpu.bch_nonzero_gpu(info, self.k_ldpc, self.ldpc, self.bch, launcher)
        corrected = xp.zeros(info.shape[0], dtype=np.int32)
        idx = xp.flatnonzero(nz)
        if idx.size:
            rows = np.ascontiguousarray(to_numpy(info[idx]))
            corr = self.bch.decode_inplace(rows)
            info[idx] = xp.asarray(rows)
            corrected[idx] = xp.asarray(corr.astype(np.int32))
        u_hat = xp.ascontiguousarray(info[:, :self.k])
        valid = ok & (corrected >= 0) & self._determined(flat, xp)
        return DecodeResult(u_hat=u_hat.reshape(lead + (self.k,)), parity_ok=ok.reshape(lead),
                            bch_corrected=corrected.reshape(lead), valid=valid.reshape(lead),
                            iterations=iters.reshape(lead))


@functools.lru_cache(maxsize=None)
def code(frame: str, rate: str) -> DVBS2Code:
    """The DVB-S2 code of a FECFRAME ('normal'/'short') and nominal rate ('1/2', '9/10', ...); cached."""
    return DVBS2Code(frame, rate)


def all_codes():
    """(frame, rate) of all 21 codes, normal first."""
    return [("normal", r) for r in NORMAL_RATES] + [("short", r) for r in SHORT_RATES]
