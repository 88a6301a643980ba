# SPDX-License-Identifier: Apache-2.0
"""Shared bookkeeping of the link simulations: error counters and the report every chain prints.

The report has the same fields for every chain (SCPPM, DPSK) so scripts can compare them:
``chain, frames, frame_errors, bit_errors, info_bits, fer, ber, iterations_mean, seconds,
info_bits_per_s, backend`` plus ``params`` (the chain's own settings) and ``backend_info``.
``frames`` counts the frames decoded; ``frames_requested`` is ``--frames`` (DPSK rounds it up to
whole interleaver blocks and then says so in ``note_frames``, printed under the frames line).

Reproducibility: SCPPM draws from :class:`FrameStreams`, one random stream per codeword index; DPSK
from one generator, block after block in link order. Either way the counts depend on ``--seed`` and
the chain's parameters only, never on ``--batch`` (frames per decoder call) or on the backend that
decodes (``tests/test_sim_repro.py``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest

from ..errors import ConfigError


def check_seed(seed, who: str) -> int:
    """``seed`` as an int >= 0 (NumPy's SeedSequence refuses negative ones with a traceback);
    ConfigError naming ``who`` and the value otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"{who}: --seed must be an integer >= 0, got seed={seed!r}")
    return int(seed)


@dataclass(frozen=True)
class FrameStreams:
    """Independent random streams of one simulation run, keyed by (purpose, index).

    ``streams(purpose, i)`` is a fresh ``numpy.random.Generator`` (PCG64) on child ``i`` of child
    ``purpose`` of ``numpy.random.SeedSequence(seed)`` (spawn key ``(purpose, i)``), so what frame
    ``i`` draws for ``purpose`` depends only on (seed, purpose, i): not on how frames are grouped
    into decoder calls (``--batch``), nor on how many frames run before or after it. ``purpose``
    separates the draws of one frame (e.g. 0: its information bits, 1: the channel of the i-th
    transmitted codeword). Creating a stream costs about 13 us.

    seed : int >= 0 (ConfigError otherwise, naming ``who``).
    """

    seed: int
    who: str = "simulation"

    def __post_init__(self):
        object.__setattr__(self, "seed", check_seed(self.seed, self.who))

    def __call__(self, purpose: int, index: int) -> np.random.Generator:
        ss = np.random.SeedSequence(self.seed, spawn_key=(int(purpose), int(index)))
        return np.random.Generator(np.random.PCG64(ss))


@dataclass
class ErrorCounter:
    """Accumulates frame and bit errors over batches of decoded frames."""

    frames: int = 0
    frame_errors: int = 0
    bit_errors: int = 0
    info_bits: int = 0
    iterations: list = field(default_factory=list)
    undetected: int = 0   # frames reported valid (CRC/BCH ok) whose bits are nevertheless wrong
    flagged: int = 0      # frames the receiver itself reported as failed

    def update(self, u, u_hat, iterations=None, valid=None):
        """Count one batch: u, u_hat (F, k) uint8; iterations (F,); valid (F,) bool or None."""
        u = np.asarray(u)
        u_hat = np.asarray(u_hat)
        errs = np.count_nonzero(u != u_hat, axis=-1)
        self.frames += errs.size
        self.frame_errors += int(np.count_nonzero(errs))
        self.bit_errors += int(errs.sum())
        self.info_bits += int(u.size)
        if iterations is not None:
            self.iterations.extend(np.asarray(iterations).ravel().tolist())
        if valid is not None:
            valid = np.asarray(valid).ravel()
            self.flagged += int(np.count_nonzero(~valid))
            self.undetected += int(np.count_nonzero(valid & (errs.ravel() > 0)))


def report(chain: str, counter: ErrorCounter, seconds: float, backend: str, params: dict,
           backend_info: dict | None = None, **extra) -> dict:
    """The simulation report (one JSON object)."""
    fer = counter.frame_errors / counter.frames if counter.frames else float("nan")
    ber = counter.bit_errors / counter.info_bits if counter.info_bits else float("nan")
    if counter.frames:
        ci = binomtest(counter.frame_errors, counter.frames).proportion_ci(0.95, method="exact")
        fer_ci = [ci.low, ci.high]
    else:
        fer_ci = [float("nan"), float("nan")]
    out = {
        "chain": chain,
        "frames": counter.frames,
        "frame_errors": counter.frame_errors,
        "bit_errors": counter.bit_errors,
        "info_bits": counter.info_bits,
        "fer": fer,
        "fer_ci95": fer_ci,
        "ber": ber,
        "frames_flagged_bad": counter.flagged,
        "undetected_errors": counter.undetected,
        "iterations_mean": float(np.mean(counter.iterations)) if counter.iterations else 0.0,
        "seconds": seconds,
        "info_bits_per_s": counter.info_bits / seconds if seconds > 0 else float("nan"),
        "backend": backend,
        "params": params,
    }
    out.update(extra)
    if backend_info is not None:
        out["backend_info"] = backend_info
    return out


def print_report(rep: dict, as_json: bool, file=None) -> None:
    """JSON (one object, one line) or a readable summary."""
    file = sys.stdout if file is None else file
    if as_json:
        print(json.dumps(rep, default=float), file=file)
        return
    p = ", ".join(f"{k}={v}" for k, v in rep["params"].items())
    lines = [
        f"{rep['chain']} simulation ({p})",
        f"  backend          {rep['backend']}",
        (f"  frames           {rep['frames']}  (frame errors {rep['frame_errors']}, flagged bad "
         f"{rep['frames_flagged_bad']}, undetected {rep['undetected_errors']})"),
        *([f"  {'note_frames':<16} {rep['note_frames']}"] if "note_frames" in rep else []),
        f"  FER              {rep['fer']:.3e}  (95% CI {rep['fer_ci95'][0]:.2e} .. {rep['fer_ci95'][1]:.2e})",
        f"  BER              {rep['ber']:.3e}  ({rep['bit_errors']} of {rep['info_bits']} bits)",
        f"  iterations mean  {rep['iterations_mean']:.2f}",
        (f"  throughput       {rep['info_bits_per_s'] / 1e6:.3f} Mb/s of information ({rep['seconds']:.2f} s, "
         f"channel simulation included)"),
    ]
    if "decode_info_bits_per_s" in rep:
        lines.append(f"  decoder          {rep['decode_info_bits_per_s'] / 1e6:.3f} Mb/s of information "
                     f"({rep.get('decode_seconds', float('nan')):.2f} s decoding)")
    for k, v in rep.items():
        if (k.startswith("note_") and k != "note_frames") or k in ("capacity_limit_ns", "gap_db", "interleaver"):
            lines.append(f"  {k:<16} {v}")
    print("\n".join(lines), file=file)
