# SPDX-License-Identifier: Apache-2.0
"""SCPPM receiver: slot counts -> symbol log-likelihoods -> iterative decoding -> CRC-checked blocks.

LLR convention: positive LLR means bit 0 (``llr = ln P(b=0)/P(b=1)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ...backend import get_array_module, results_to_host
from ...errors import BackendUnavailable, ConfigError, ShapeError
from ...framing.crc import CRC32_HPE_POLY, crc_table
from ...framing.randomizer import pn8
from . import _cpu
from .code import SCPPMCode, bit_interleaver
from .encoder import ChannelInterleaver

_CRC32_TAB = crc_table(CRC32_HPE_POLY, 32).astype(np.uint32)   # byte table of the CRC-32 check


@dataclass
class DecodeResult:
    """Per-codeword decoder output (a failed CRC is a result, not an exception).

    u_hat : (F, k) uint8 decoded information bits (de-randomized).
    crc_ok : (F,) bool, the CRC-32 of the decoded block checks.
    iterations : (F,) int, turbo iterations used (<= max_iter; fewer when the CRC checked early).
    """

    u_hat: np.ndarray
    crc_ok: np.ndarray
    iterations: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.crc_ok


def edge_bits(M: int) -> np.ndarray:
    """Accumulator input bits on each inner-trellis edge: ``(2, M)`` int64.

    Leaving state sigma (the previous accumulator output bit) with PPM symbol s (accumulated bits,
    MSB first), the input bits are v = s ^ ((s >> 1) | (sigma << (m-1))); the next state is s & 1.
    """
    m = M.bit_length() - 1
    s = np.arange(M, dtype=np.int64)
    return np.stack([s ^ (s >> 1), s ^ ((s >> 1) | (1 << (m - 1)))])


class SCPPMDecoder:
    """Iterative (turbo) SCPPM decoder on symbol log-likelihoods.

    Parameters
    ----------
    code : SCPPMCode.
    max_iter : maximum number of inner/outer iterations (early stop on the CRC).
    max_log : True for max-log-MAP, False (default) for exact log-MAP.
    ext_scale : scaling of the outer extrinsic LLRs fed back to the inner SISO in max-log mode
        (about 0.75 helps max-log); exact log-MAP needs none and ignores it.
    launcher : where NumPy input is decoded. None (default): the CPU implementation (Numba). A
        kernel launcher (:func:`modem.backend.fec_launcher`, e.g. the GPU's): the CUDA kernels
        (``kernels/scppm_siso.cu``), the metric copied to the launcher's device and the results
        back by this call (one transfer each way, explicit here: the kernel wrappers never copy),
        so the caller stays on NumPy. Exact log-MAP only (``max_log`` with a launcher raises
        BackendUnavailable). CuPy input always decodes on the GPU (on ``launcher`` where given) and its
        results stay there.

    Input  ``metric``: ``(*batch, S, M)`` float symbol log-likelihoods, ``metric[..., i, s] =
    ln P(y_i | pulse in slot s)`` up to a constant per symbol (e.g. counts * ln(1 + ns/nb)).
    Output :class:`DecodeResult` with batch shape ``(*batch,)``.
    """

    def __init__(self, code: SCPPMCode, max_iter: int = 16, max_log: bool = False, ext_scale: float = 1.0,
                 launcher=None):
        if not isinstance(code, SCPPMCode):
            raise ConfigError(f"SCPPMDecoder: code must be an SCPPMCode, got {type(code).__name__}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ConfigError(f"SCPPMDecoder: max_iter must be an integer >= 1, got max_iter={max_iter!r}")
        if isinstance(ext_scale, bool) or not isinstance(ext_scale, (int, float, np.integer, np.floating)) \
                or not (0.0 < ext_scale <= 1.0):
            raise ConfigError(f"SCPPMDecoder: ext_scale must be in (0, 1], got ext_scale={ext_scale!r}")
        self.code = code
        self.max_iter = int(max_iter)
        self.max_log = bool(max_log)
        self.ext_scale = float(ext_scale)
        if launcher is not None and self.max_log:
            raise BackendUnavailable("SCPPMDecoder: the GPU kernels implement exact log-MAP only; max_log=True "
                                     "decodes on the CPU (launcher=None)")
        self.launcher = launcher
        self._edge_bits = edge_bits(code.M)
        self._ginv = np.argsort(self._edge_bits[0]).astype(np.int64)      # inverse Gray map
        self._par = np.array([bin(v).count("1") & 1 for v in range(code.M // 2)], dtype=np.float64)
        # interleaved bit j <- punctured position pi(j) <- mother-code serial position
        self._inner_to_mother = np.ascontiguousarray(code.kept_positions[bit_interleaver()]).astype(np.int64)
        # the same map into the outer SISO's transposed (3, k_hat) arrays (log-MAP path)
        p = self._inner_to_mother
        self._itm_stages = np.ascontiguousarray((p % 3) * code.k_hat + p // 3)
        self._pn = pn8(code.k)

    def decode(self, metric, check: bool = True) -> DecodeResult:
        """Decode; ``check=False`` skips the finiteness scan (for callers that validated already)."""
        c = self.code
        xp = get_array_module(metric)
        if xp is not np:    # a CuPy array selects the GPU backend; outputs are CuPy arrays
            launcher = self.launcher
            if launcher is None:
                from ...gpu.launch import default_launcher  # noqa: PLC0415
                launcher = default_launcher()
            return self._decode_device(metric, launcher, check)
        if self.launcher is not None:     # host in, host out; the kernels on the launcher's device
            y = self.launcher.xp.asarray(np.asarray(metric, dtype=np.float64))
            return results_to_host(self._decode_device(y, self.launcher, check))
        y = np.asarray(metric, dtype=np.float64)
        if y.ndim < 2 or y.shape[-2:] != (c.S, c.M):
            raise ShapeError(f"SCPPMDecoder: metric must have shape (..., {c.S}, {c.M}) for M={c.M}, "
                             f"got {y.shape}")
        if check and not np.all(np.isfinite(y)):
            bad = y[~np.isfinite(y)].flat[0]
            raise ShapeError(f"SCPPMDecoder: metric holds a non-finite value ({bad})")
        batch = y.shape[:-2]
        flat = np.ascontiguousarray(y.reshape((-1, c.S, c.M)))
        F = flat.shape[0]
        # zero-initialised: a codeword the kernel did not finish can only read as a CRC failure
        u_hat = np.zeros((F, c.k_hat), dtype=np.uint8)
        ok = np.zeros(F, dtype=np.bool_)
        it = np.zeros(F, dtype=np.int64)
        if F and self.max_log:
            _cpu.turbo_decode(flat, self._edge_bits, self._ginv, self._par, c.m, self._inner_to_mother, c.k_hat, c.k,
                              self.max_iter, self.max_log, self.ext_scale, CRC32_HPE_POLY,
                              min(F, 4 * numba.get_num_threads()), u_hat, ok, it)
        elif F:
            # one chunk per thread: a chunk decodes its codewords two at a time
            _cpu.turbo_decode_stages(flat, self._ginv, self._par, c.m, self._itm_stages, c.k_hat, c.k, self.max_iter,
                                     CRC32_HPE_POLY, _CRC32_TAB, min(F, numba.get_num_threads()), u_hat, ok, it)
        u = (u_hat[:, : c.k] ^ self._pn).reshape(batch + (c.k,))
        return DecodeResult(u_hat=u, crc_ok=ok.reshape(batch), iterations=it.reshape(batch))

    __call__ = decode

    def _decode_device(self, metric, launcher, check: bool = True) -> DecodeResult:
        """The kernel path (``kernels/scppm_siso.cu``) on ``launcher``'s arrays: CuPy on a GPU, or
        NumPy under the host emulation used by the tests. Exact log-MAP only (max_log raises
        BackendUnavailable). ``check`` costs one device-to-host read of a flag."""
        from . import _gpu  # noqa: PLC0415
        c = self.code
        xp = launcher.xp
        y = xp.asarray(metric, dtype=xp.float64)
        if y.ndim < 2 or y.shape[-2:] != (c.S, c.M):
            raise ShapeError(f"SCPPMDecoder: metric must have shape (..., {c.S}, {c.M}) for M={c.M}, "
                             f"got {y.shape}")
        if check and y.size and not bool(xp.isfinite(y).all()):
            bad = y[~xp.isfinite(y)].ravel()[0]
            raise ShapeError(f"SCPPMDecoder: metric holds a non-finite value ({bad})")
        batch = y.shape[:-2]
        flat = xp.ascontiguousarray(y.reshape((-1, c.S, c.M)))
        u, ok, it = _gpu.turbo_decode_gpu(flat, self, launcher)
        return DecodeResult(u_hat=u.reshape(batch + (c.k,)), crc_ok=ok.reshape(batch), iterations=it.reshape(batch))


def llr_weight(ns: float, nb: float) -> float:
    """Poisson slot LLR weight ln(1 + ns/nb); a count y in a slot contributes y * weight."""
    for name, v in (("ns", ns), ("nb", nb)):
        try:
            float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"llr_weight: {name} must be a real number, got {name}={v!r}") from None
    ns, nb = float(ns), float(nb)
    if not (np.isfinite(ns) and ns > 0):
        raise ConfigError(f"llr_weight: ns (signal photons per pulse) must be > 0, got ns={ns!r}")
    if not (np.isfinite(nb) and nb > 0):
        raise ConfigError(f"llr_weight: nb (background photons per slot) must be > 0, got nb={nb!r}; "
                          "for nb = 0 pass a small floor such as 1e-3")
    return math.log1p(ns / nb)


class CodewordDeinterleaver:
    """Channel de-interleaver on codeword-aligned symbol metrics, streaming, with restarts.

    ``out, src = deint.push(metric, restart)``: ``metric`` (F, S, M) float, the data symbols (CSM
    removed) of consecutive received codewords; ``restart`` (F,) bool or None, True where a codeword
    does not follow the one before it (a hole in the stream: a new lock, a lost segment). Returns
    the de-interleaved codewords completed, ``out`` (G, S, M), and ``src`` (G,) int64, the index of
    the input codeword whose symbols completed each. At a restart the de-interleaver starts again
    empty: its first ``delay`` output symbols are fill and dropped, and the codewords spread over
    the hole are lost (their symbols before it are dropped with the old state). Without a channel
    interleaver ``out`` is ``metric`` and ``src`` ``arange(F)``. Any chunking gives the same output.
    """

    def __init__(self, code: SCPPMCode):
        self.code = code
        self._deint = ChannelInterleaver(code, inverse=True, fill=0.0)
        self.delay = self._deint.delay
        self.reset()

    def reset(self):
        """Start again empty (as at a restart)."""
        self._deint.reset()
        self._skip = self.delay                 # output symbols still to drop as fill
        self._pending = np.zeros((0, self.code.M))

    def push(self, metric, restart=None) -> tuple[np.ndarray, np.ndarray]:
        c = self.code
        x = metric if c.interleaver_rows == 1 and hasattr(metric, "shape") else np.asarray(metric)  # (device arrays)
        if x.ndim != 3 or x.shape[1:] != (c.S, c.M):
            raise ShapeError(f"CodewordDeinterleaver.push: metric must have shape (F, {c.S}, {c.M}), got {x.shape}")
        F = x.shape[0]
        rs = np.zeros(F, bool) if restart is None else np.asarray(restart, dtype=bool)
        if rs.shape != (F,):
            raise ShapeError(f"CodewordDeinterleaver.push: restart must have shape ({F},), got {rs.shape}")
        if c.interleaver_rows == 1:
            return x, np.arange(F, dtype=np.int64)
        outs, src = [], []
        cuts = sorted({0, *np.flatnonzero(rs).tolist()}) + [F]     # runs of contiguous codewords
        for a, b in zip(cuts[:-1], cuts[1:]):
            if a == b:                                            # no codewords (F = 0)
                continue
            if rs[a]:
                self.reset()
            stream = self._deint.process(x[a:b].reshape(-1, c.M))
            drop = min(self._skip, stream.shape[0])
            # symbols out, per input codeword, counted from before this run's pending ones
            done = self._pending.shape[0] - drop + c.S * np.arange(1, b - a + 1)
            stream = np.concatenate([self._pending, stream[drop:]])
            self._skip -= drop
            n = stream.shape[0] // c.S
            self._pending = stream[n * c.S:]
            outs.append(stream[:n * c.S].reshape(n, c.S, c.M))
            # codeword r is whole once (r + 1)*S symbols are out
            src.append(a + np.searchsorted(done, c.S * np.arange(1, n + 1)))
        if not outs:
            return np.zeros((0, c.S, c.M), x.dtype), np.zeros(0, np.int64)
        return np.concatenate(outs), np.concatenate(src).astype(np.int64)


class SCPPMReceiver:
    """Slot counts of whole transmitted codewords -> symbol metrics -> :class:`SCPPMDecoder`.

    Undoes the slot mapper (drops the M/4 guard slots), the repeater (sums the counts of the q_d
    copies: the sum is the sufficient statistic on the Poisson channel), the CSM and the channel
    interleaver (streaming, explicit state), then weights counts by ln(1 + ns/nb).

    ``receive(counts)``: counts ``(F, slots_per_codeword)`` (non-negative, finite) of
    codeword-aligned transmitted blocks -> :class:`DecodeResult` of the codewords completed by this
    call. With a channel interleaver the first ``delay / S`` blocks only fill it.
    ``receive_stream(counts, restart)`` also takes the holes in the codeword stream and says which
    input codeword completed each result (:class:`CodewordDeinterleaver`).
    """

    def __init__(self, code: SCPPMCode, ns: float, nb: float, **decoder_options):
        self.code = code
        self.weight = llr_weight(ns, nb)
        self.ns, self.nb = float(ns), float(nb)
        self.decoder = SCPPMDecoder(code, **decoder_options)
        self.deinterleaver = CodewordDeinterleaver(code)

    def reset(self):
        self.deinterleaver.reset()

    def symbol_counts(self, counts) -> np.ndarray:
        """Counts per PPM slot of the codeword's S data symbols: ``(F, slots) -> (F, S, M)`` float64."""
        return self._symbol_metric(counts, 1.0)

    def _symbol_metric(self, counts, weight: float, xp=np):
        """Validated counts (on the host), then :func:`symbol_metric` on ``xp``'s arrays: with a
        device ``xp`` the counts are uploaded as they are (uint16: a quarter of the float64 metric
        they give, less still with guard slots) and the metric is built on the device."""
        y = self._checked_counts(counts)
        return symbol_metric(y if xp is np else xp.asarray(y), self.code, weight, xp)

    def _checked_counts(self, counts) -> np.ndarray:
        c = self.code
        y = np.asarray(counts)
        if y.ndim != 2 or y.shape[-1] != c.slots_per_codeword:
            raise ShapeError(f"SCPPMReceiver: counts must have shape (F, {c.slots_per_codeword}) for "
                             f"{c.describe()}, got {y.shape}")
        if y.dtype.kind not in "iufb":
            raise ShapeError(f"SCPPMReceiver: counts must be numeric, got dtype {y.dtype}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            bad = y[~np.isfinite(y)].flat[0]
            raise ShapeError(f"SCPPMReceiver: counts hold a non-finite value ({bad})")
        if y.size and y.dtype.kind in "if" and y.min() < 0:
            raise ShapeError(f"SCPPMReceiver: counts must be >= 0, found {y.min()}")
        return y

    def receive(self, counts) -> DecodeResult:
        return self.receive_stream(counts)[0]

    def receive_stream(self, counts, restart=None) -> tuple[DecodeResult, np.ndarray]:
        """``counts`` as :meth:`receive`, ``restart`` (F,) bool or None (see
        :class:`CodewordDeinterleaver`) -> (results of the codewords completed, (G,) index of the
        input codeword that completed each). With a kernel launcher (``launcher=`` of the
        decoder) and no channel interleaver the counts go to the device and the metric is built
        there; the results are host arrays either way."""
        launcher = self.decoder.launcher
        if launcher is not None and self.code.interleaver_rows == 1:
            metric, src = self.deinterleaver.push(self._symbol_metric(counts, self.weight, launcher.xp), restart)
            return results_to_host(self.decoder._decode_device(metric, launcher, check=False)), src
        metric, src = self.deinterleaver.push(self._symbol_metric(counts, self.weight), restart)
        return self.decoder.decode(metric, check=False), src


def symbol_metric(counts, code: SCPPMCode, weight: float, xp=np):
    """Slot counts of whole transmitted codewords -> the decoder's symbol metric.

    counts : (F, code.slots_per_codeword) integer or float, >= 0 (not checked here), an ``xp`` array
    Returns (F, S, M) float64 ``xp`` array: per data symbol the counts of its M PPM slots (guard
    slots and the CSM's symbols dropped; the q copies of a repeated symbol or codeword summed, the
    sufficient statistic on the Poisson channel) times ``weight`` (ln(1 + ns/nb), :func:`llr_weight`;
    1.0 gives the counts). One implementation for the host (NumPy) and the device (CuPy)."""
    c = code
    F = counts.shape[0]
    n_sym, q = c.symbols_per_codeword, c.repetition
    if q == 1:
        z = counts.reshape(F, n_sym, c.slots_per_symbol)
    elif c.repeat_unit == "symbol":
        z = counts.reshape(F, n_sym, q, c.slots_per_symbol).sum(axis=2, dtype=np.float64)
    else:
        z = counts.reshape(F, q, n_sym, c.slots_per_symbol).sum(axis=1, dtype=np.float64)
    return xp.multiply(z[:, c.L_csm:, :c.M], weight, dtype=np.float64)
