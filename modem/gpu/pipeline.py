# SPDX-License-Identifier: Apache-2.0
"""Streaming GPU receive pipelines: host batches in, checked frames out, transfers overlapped.

* :class:`SCPPMGPUPipeline`: codeword-aligned slot counts ``(F, slots_per_codeword)`` -> symbol
  metrics (guard slots and CSM dropped, repeats summed, times ln(1 + ns/nb)) -> SCPPM log-MAP
  decoding -> CRC-checked blocks (:class:`modem.fec.scppm.decoder.DecodeResult`, NumPy).
* :class:`DPSKGPUPipeline`: balanced-detector port energies ``xa, xb (F, n)`` (float32 or
  float64; float32 is sent as is and widened on the device) -> DPSK LLRs
  (Gaussian or exact) -> DVB-S2 LDPC min-sum + BCH -> checked frames
  (:class:`modem.fec.dvbs2.code.DecodeResult`, NumPy).

``pipe.run(batches)`` takes an iterable of host (NumPy) batches and yields one host result per
batch, in order. On a GPU, two pinned host buffers and two device buffers alternate: batch i+1
is copied to pinned memory and sent host-to-device on a copy stream while batch i is decoded on
a compute stream; the result of batch i is brought back (the chain's edge) only after batch i+1
has been queued. Batches of a few hundred codewords fill an H100 (the benchmark sweeps the
size). With a NumPy launcher (the tests' host emulation of the kernels) the same code runs
sequentially, so the batching logic is testable without a GPU.

The output equals the CPU receivers' for the same input (same kernels as the per-call GPU
path, which tests/test_gpu_equivalence.py pins to the CPU), whatever the batch boundaries; the
DPSK chain applies DVBS2Code.decode's outlier guard and erasure rule as the CPU does. Exception:
``llr='exact'`` (Bessel kernel, float32 to rtol 1e-6 of the CPU's) can round an LLR to another
16-bit level than the CPU, so decisions agree to that tolerance, not bit for bit.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ..backend import to_numpy
from ..errors import ConfigError, ShapeError


class _Overlap:
    """Double-buffered host->device staging on a copy stream, compute on a compute stream."""

    def __init__(self, launcher):
        self.launcher = launcher
        self.xp = launcher.xp
        self.gpu = self.xp is not np
        if self.gpu:
            if getattr(launcher, "stream", None) is not None:
                # its kernels would run on that stream, which waits for none of the transfers
                raise ConfigError("GPU pipeline: the launcher must launch on the current stream (stream=None); "
                                  "the pipeline runs its kernels on its own compute stream")
            cp = self.xp
            self.copy_stream = cp.cuda.Stream(non_blocking=True)
            self.compute_stream = cp.cuda.Stream(non_blocking=True)
            self.h2d_done = [None, None]
            self.compute_done = [None, None]
            self.pinned: list[dict] = [{}, {}]
            self.device: list[dict] = [{}, {}]

    def _pinned(self, slot, name, like):
        cp = self.xp
        if like.size == 0:                  # nothing to send (np.frombuffer of 0 pinned bytes)
            return np.empty(like.shape, dtype=like.dtype)
        buf = self.pinned[slot].get(name)
        if buf is None or buf.size < like.size or buf.dtype != like.dtype:
            mem = cp.cuda.alloc_pinned_memory(like.nbytes)
            buf = np.frombuffer(mem, dtype=like.dtype, count=like.size)
            self.pinned[slot][name] = buf
        return buf[:like.size].reshape(like.shape)

    def stage(self, slot: int, arrays: dict) -> dict:
        """Send host arrays to the device (async on a GPU); returns device arrays for ``slot``."""
        if not self.gpu:
            return {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        cp = self.xp
        if self.h2d_done[slot] is not None:
            self.h2d_done[slot].synchronize()           # pinned[slot] is free again
        out = {}
        with self.copy_stream:
            if self.compute_done[slot] is not None:      # device[slot] no longer read by compute
                self.copy_stream.wait_event(self.compute_done[slot])
            for k, v in arrays.items():
                v = np.ascontiguousarray(v)
                pin = self._pinned(slot, k, v)
                pin[...] = v
                dev = self.device[slot].get(k)
                if dev is None or dev.shape != v.shape or dev.dtype != v.dtype:
                    dev = cp.empty(v.shape, dtype=v.dtype)
                    self.device[slot][k] = dev
                dev.set(pin, stream=self.copy_stream)
                out[k] = dev
            self.h2d_done[slot] = self.copy_stream.record()
        return out

    def compute(self, slot: int, fn):
        """Run ``fn()`` (kernel launches) after the slot's transfer, on the compute stream."""
        if not self.gpu:
            return fn()
        self.compute_stream.wait_event(self.h2d_done[slot])
        with self.compute_stream:
            res = fn()
            self.compute_done[slot] = self.compute_stream.record()
        return res

    def wait(self, slot: int):
        """Wait for the slot's compute (before its results are read back)."""
        if self.gpu:
            self.compute_done[slot].synchronize()


def _run(overlap: _Overlap, batches: Iterable, split, launch, finish) -> Iterator:
    """Queue batch i+1's transfer before reading back batch i. ``launch`` should not wait for the
    device: a wait there (the DPSK outlier guard's flag read) also waits for batch i-1's kernels
    queued before it on the compute stream, which only moves the wait for batch i-1 earlier.
    An error on batch i+1 (a bad or partial batch, or the batch source failing) comes after batch
    i's result: a batch that was decoded is never lost with the error of the next one."""
    pending = None
    try:
        for i, batch in enumerate(batches):
            slot = i % 2
            dev = overlap.stage(slot, split(batch))
            res = overlap.compute(slot, lambda: launch(dev))  # noqa: B023 - called at once
            if pending is not None:
                done, pending = pending, None
                overlap.wait(done[0])
                yield finish(done[1])
            pending = (slot, res)
    except Exception:
        if pending is not None:
            done, pending = pending, None
            overlap.wait(done[0])
            yield finish(done[1])
        raise
    if pending is not None:
        overlap.wait(pending[0])
        yield finish(pending[1])


def _to_host(res):
    return type(res)(**{k: to_numpy(v) for k, v in vars(res).items()})


class SCPPMGPUPipeline:
    """Slot counts -> checked SCPPM blocks on the GPU (see the module docstring).

    Parameters: code (SCPPMCode; no channel interleaver), ns, nb (signal photons per pulse,
    background per slot), max_iter, launcher (default: CuPy on the current device).
    """

    def __init__(self, code, ns: float, nb: float, max_iter: int = 16, launcher=None):
        from ..fec.scppm.decoder import SCPPMDecoder, llr_weight  # noqa: PLC0415
        if code.interleaver_rows > 1:
            raise ConfigError("SCPPMGPUPipeline: the channel interleaver is not supported on the GPU "
                              f"pipeline (interleaver_rows={code.interleaver_rows}); use SCPPMReceiver")
        if launcher is None:
            from .launch import default_launcher  # noqa: PLC0415
            launcher = default_launcher()
        self.code = code
        self.weight = llr_weight(ns, nb)
        self.decoder = SCPPMDecoder(code, max_iter=max_iter)
        self.launcher = launcher
        self.overlap = _Overlap(launcher)

    def symbol_metric(self, counts):
        """Device counts (F, slots_per_codeword) -> metric (F, S, M) float64, as SCPPMReceiver."""
        from ..fec.scppm.decoder import symbol_metric  # noqa: PLC0415
        xp = self.launcher.xp
        return xp.ascontiguousarray(symbol_metric(counts, self.code, self.weight, xp))

    def _split(self, counts):
        y = np.asarray(counts)
        c = self.code
        if y.ndim != 2 or y.shape[1] != c.slots_per_codeword:
            raise ShapeError(f"SCPPMGPUPipeline: counts must have shape (F, {c.slots_per_codeword}), got {y.shape}")
        if y.dtype.kind not in "iu":
            raise ShapeError(f"SCPPMGPUPipeline: counts must be integers, got dtype {y.dtype}")
        if y.size and y.dtype.kind == "i" and y.min() < 0:       # as SCPPMReceiver
            raise ShapeError(f"SCPPMGPUPipeline: counts must be >= 0, found {y.min()}")
        return {"counts": y}

    def _launch(self, dev):
        return self.decoder._decode_device(self.symbol_metric(dev["counts"]), self.launcher, check=False)

    def run(self, batches: Iterable) -> Iterator:
        """Yield one host DecodeResult per host batch of counts, in order."""
        return _run(self.overlap, batches, self._split, self._launch, _to_host)


def _check_dpsk_parameters(es, sigma2, modes, llr, max_iter):
    """The checks of the CPU chain (dpsk.llr_* and DVBS2Code.decode), made once: the kernels take
    the values as they are (sigma2 = 0 gave inf/NaN LLRs, es < 0 NaN, max_iter = 0 a parity
    failure of every frame, and the exact-LLR kernel read modes 3 as 2)."""
    who = "DPSKGPUPipeline"
    try:
        esv = float(es)
    except (TypeError, ValueError):
        raise ConfigError(f"{who}: es must be a real number, got es={es!r}") from None
    if not (np.isfinite(esv) and esv >= 0):
        raise ConfigError(f"{who}: es (signal energy per bit) must be finite and >= 0, got es={es!r}")
    from .ops import check_dpsk_kernel_parameters  # noqa: PLC0415
    check_dpsk_kernel_parameters(who, sigma2, modes, llr, "use llr='gaussian' or the CPU chain")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ConfigError(f"{who}: max_iter must be an integer >= 1, got max_iter={max_iter!r}")


class DPSKGPUPipeline:
    """Port energies -> DVB-S2 checked frames on the GPU (see the module docstring).

    Parameters: code (DVBS2Code), es, sigma2, modes (as modem.modulation.dpsk.llr_gaussian),
    llr ('gaussian' or 'exact'), max_iter, launcher (default: CuPy on the current device).
    The input batches are ``(xa, xb)`` pairs of (F, n) arrays holding the code bits' port
    energies (framing, ASM and derandomisation are outside this stage).
    """

    def __init__(self, code, es: float, sigma2: float, modes: int = 1, llr: str = "gaussian", max_iter: int = 50,
                 launcher=None):
        if llr not in ("gaussian", "exact"):
            raise ConfigError(f"DPSKGPUPipeline: llr must be 'gaussian' or 'exact', got {llr!r}")
        _check_dpsk_parameters(es, sigma2, modes, llr, max_iter)
        if launcher is None:
            from .launch import default_launcher  # noqa: PLC0415
            launcher = default_launcher()
        self.code, self.es, self.sigma2, self.modes, self.llr = code, float(es), float(sigma2), int(modes), llr
        self.max_iter = int(max_iter)
        self.launcher = launcher
        self.overlap = _Overlap(launcher)

    def _split(self, batch):
        xa, xb = (np.asarray(a) for a in batch)
        if xa.dtype != xb.dtype or xa.dtype not in (np.float32, np.float64):   # float32 travels as is
            xa, xb = xa.astype(np.float64), xb.astype(np.float64)
        if xa.shape != xb.shape or xa.ndim != 2 or xa.shape[1] != self.code.n:
            raise ShapeError(f"DPSKGPUPipeline: xa, xb must both have shape (F, {self.code.n}), got "
                             f"{xa.shape} and {xb.shape}")
        for name, a in (("xa", xa), ("xb", xb)):     # two reductions (NaN fails both tests); details on failure
            if a.size and not (a.min() >= 0 and a.max() < np.inf):
                bad = ~(np.isfinite(a) & (a >= 0))
                at = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape))
                raise ShapeError(f"DPSKGPUPipeline: port energies must be finite and >= 0, found {name}{list(at)} = "
                                 f"{float(a[at])}")
        return {"xa": xa, "xb": xb}

    def _launch(self, dev):
        """LLR kernel, outlier guard, LDPC kernel, BCH check kernel, erasure count (see :func:`_run`;
        the guard's flag read is the only synchronisation)."""
        from ..fec.dvbs2 import _gpu  # noqa: PLC0415
        from ..fec.dvbs2.code import _clip_outliers  # noqa: PLC0415
        from .ops import BLOCK, _grid  # noqa: PLC0415
        xp, c, la = self.launcher.xp, self.code, self.launcher
        xa, xb = dev["xa"], dev["xb"]
        if xa.dtype != np.float64:                      # exact widening on the device
            xa, xb = xa.astype(np.float64), xb.astype(np.float64)
        llr = xp.empty(xa.shape, dtype=np.float32)
        es = xp.full(1, self.es, dtype=np.float64)
        no_erase = xp.zeros(1, dtype=np.uint8)
        if xa.size:
            la("dpsk_llr", f"dpsk_llr_{self.llr}_f32", _grid(xa.size), BLOCK, xa, xb, es, 0, self.sigma2,
               self.modes, no_erase, 0, xa.size, llr)
        # DVBS2Code.decode's input guard of the 16-bit kernel (a few huge LLRs must not set the
        # frame's fixed-point scale); it reads one flag per batch back to the host (a sync)
        llr = _clip_outliers(llr, xp)
        hard, ok, iters = c.ldpc.decode_device(llr, self.max_iter, "minsum", c.minsum_scale, 0.0, la)
        info = xp.ascontiguousarray(hard[:, :c.k_ldpc])
        nz = _gpu.bch_nonzero_gpu(info, c.k_ldpc, c.ldpc, c.bch, la)
        determined = c._determined(llr, xp)     # DVBS2Code.decode's erasure rule of `valid`
        return info, ok, iters, nz, determined

    def _finish(self, res):
        from ..fec.dvbs2.code import DecodeResult  # noqa: PLC0415
        info, ok, iters, nz, determined = (to_numpy(x) for x in res)
        info = np.ascontiguousarray(info)
        corrected = np.zeros(info.shape[0], dtype=np.int32)
        idx = np.flatnonzero(nz)
        if idx.size:                       # residual BCH errors: the CPU algebraic decoder
            rows = np.ascontiguousarray(info[idx])
            corrected[idx] = self.code.bch.decode_inplace(rows)
            info[idx] = rows
        return DecodeResult(u_hat=np.ascontiguousarray(info[:, :self.code.k]), parity_ok=ok,
                            bch_corrected=corrected, valid=ok & (corrected >= 0) & determined, iterations=iters)

    def run(self, batches: Iterable) -> Iterator:
        """Yield one host DecodeResult per ``(xa, xb)`` host batch, in order."""
        return _run(self.overlap, batches, self._split, self._launch, self._finish)
