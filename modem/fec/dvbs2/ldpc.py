# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 inner LDPC code (ETSI EN 302 307-1 V1.4.1, 5.3.2, Annex B/C tables): graph, encoder, decoders.

The code is irregular repeat-accumulate: H = [A | T] with A given by the parity bit address tables
(information bit 360m + j, 0 <= j < 360, is checked by parities (x + j q) mod (N-K) for each
address x of table row m, q = (N-K)/360) and T the (N-K) x (N-K) dual-diagonal accumulator
(parity bit r is in checks r and r+1). Encoding is the standard's accumulate procedure.

Decoders take channel LLRs with **positive = bit 0** (llr = log P(c=0)/P(c=1)).
"""
from __future__ import annotations

import numba
import numpy as np

from ...backend import get_array_module
from ...errors import BackendUnavailable, ConfigError
from . import _cpu


LLR_CLIP = 1.0e6  # channel LLR magnitudes are clipped here (float32 head-room; the 16-bit kernel clips as it reads)


class LDPCGraph:
    """Tanner graph of one DVB-S2 LDPC code in the layouts the kernels use.

    Attributes: n, k (= K_ldpc), m (= N-K), q; ``chk_ptr``/``chk_var`` (CSR over the m checks:
    the variable indices of check r, sorted); ``var_ptr``/``var_chk`` (CSR over the k
    information bits: their parity accumulator addresses, in table order); ``n_edges``;
    ``dc_max`` (largest check degree); ``dec_ptr``/``dec_var``/``dec_old`` (the checks in processing
    order over the decoder's variable numbering, for the check-by-check kernels); ``lay_ptr``,
    ``lay_v0``, ``lay_rho``, ``lay_cnt``, ``lay_delta``, ``layer_deg_max``, ``layer_repeats`` (the
    same graph as q layers of 360 checks, for the layer-parallel kernel; see ``_build_layers``).
    """

    def __init__(self, rows: tuple[tuple[int, ...], ...], n: int):
        k = 360 * len(rows)
        m = n - k
        if m % 360:
            raise ConfigError(f"LDPCGraph: N-K must be a multiple of 360, got N-K={m}")
        q = m // 360
        j = np.arange(360, dtype=np.int64)
        info_var, info_chk, var_chk = [], [], []
        for g, xs in enumerate(rows):
            xs = np.asarray(xs, dtype=np.int64)
            chk = (xs[None, :] + j[:, None] * q) % m          # (360, d): bit 360g + j, address order
            var_chk.append(chk.ravel())
            info_var.append(np.repeat(360 * g + j, len(xs)))
            info_chk.append(chk.ravel())
        deg_info = np.array([len(r) for r in rows for _ in range(360)], dtype=np.int64)
        self.var_ptr = np.concatenate([[0], np.cumsum(deg_info)]).astype(np.int32)
        self.var_chk = np.concatenate(var_chk).astype(np.int32)
        r = np.arange(m, dtype=np.int64)
        var = np.concatenate(info_var + [k + r, k + r[:-1]])
        chk = np.concatenate(info_chk + [r, r[:-1] + 1])
        order = np.lexsort((var, chk))
        var, chk = var[order], chk[order]
        counts = np.bincount(chk, minlength=m)
        self.chk_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        self.chk_var = var.astype(np.int32)
        self.n, self.k, self.m, self.q = n, k, m, q
        self.n_edges = int(var.size)
        self.dc_max = int(counts.max())
        self.check_degrees = counts
        # Decoder layout (quasi-cyclic order): check r = q*j + i is processed at position
        # i*360 + j (layer i, row j), and parity bit k + r is stored at k + i*360 + j. Along a
        # layer every edge then walks linearly through the variable array (information bit
        # 360*g + j - s for an address with shift s), which the hardware prefetcher follows.
        pos = (r % q) * 360 + r // q                        # processing position of check r
        new_of_old = np.concatenate([np.arange(k), k + pos])
        order = np.argsort(pos)                             # check processed at each position
        dvar = new_of_old[self.chk_var]
        dec_rows = [np.sort(dvar[self.chk_ptr[c]:self.chk_ptr[c + 1]]) for c in order]
        self.dec_ptr = np.concatenate([[0], np.cumsum(counts[order])]).astype(np.int32)
        self.dec_var = np.concatenate(dec_rows).astype(np.int32)
        self.dec_old = np.argsort(new_of_old).astype(np.int32)   # old index of each stored variable
        self._build_layers(rows, q)

    def _build_layers(self, table, q):
        """Layered description for ``_cpu.ldpc_decode_minsum_i16`` (decoder variable numbering).

        Layer i holds the 360 checks at positions i*360 + j. Edge e of layer i (``lay_ptr[i] <= e
        < lay_ptr[i+1]``): variables ``lay_v0[e] + jv`` meet rows ``(jv + lay_rho[e]) mod 360`` for
        ``jv < lay_cnt[e]``. Information group g with address x = i + q*b gives (360g, b, 360);
        the parity runs of layer i and i-1 give (k + 360i, 0, 360) and (k + 360(i-1), 0, 360); in
        layer 0 the second run is that of layer q-1 shifted by one row, without its last bit
        (check 0 has a single parity neighbour): (k + 360(q-1), 1, 359). ``lay_delta[e]``: an
        earlier edge of the same layer has the same variables (``layer_repeats`` counts them);
        the kernel then adds its message change instead of overwriting the posterior.
        """
        k, Z = self.k, 360
        layers = [[] for _ in range(q)]
        for g, xs in enumerate(table):
            seen = set()
            for x in xs:
                i, b = x % q, x // q
                layers[i].append((360 * g, b, Z, i in seen))
                seen.add(i)
        for i in range(q):
            layers[i].append((k + Z * i, 0, Z, False))
            layers[i].append((k + Z * (i - 1), 0, Z, False) if i else (k + Z * (q - 1), 1, Z - 1, False))
        edges = [e for lay in layers for e in lay]
        self.lay_ptr = np.concatenate([[0], np.cumsum([len(lay) for lay in layers])]).astype(np.int64)
        self.lay_v0 = np.array([e[0] for e in edges], dtype=np.int64)
        self.lay_rho = np.array([e[1] for e in edges], dtype=np.int64)
        self.lay_cnt = np.array([e[2] for e in edges], dtype=np.int64)
        self.lay_delta = np.array([e[3] for e in edges], dtype=np.bool_)
        self.layer_deg_max = max(len(lay) for lay in layers)
        self.layer_repeats = int(self.lay_delta.sum())

    def parity_check_matrix(self):
        """H as a scipy.sparse CSR matrix (m, n) of uint8 (for tests and analysis)."""
        import scipy.sparse as sp  # noqa: PLC0415
        data = np.ones(self.n_edges, dtype=np.uint8)
        return sp.csr_matrix((data, self.chk_var, self.chk_ptr), shape=(self.m, self.n))

    def encode(self, u: np.ndarray) -> np.ndarray:
        """Codewords (B, n) = [u, p] of the C-contiguous (B, k) uint8 information block."""
        p = _cpu.ldpc_encode(u, self.var_ptr, self.var_chk, self.m)
        return np.concatenate([u, p], axis=1)

    def syndrome_ok(self, c: np.ndarray) -> np.ndarray:
        """(B,) bool: H c = 0 for each row of the C-contiguous (B, n) uint8 array."""
        return _cpu.ldpc_syndrome_ok(c, self.chk_ptr, self.chk_var)

    def decode(self, llr: np.ndarray, max_iter: int, algorithm: str, scale: float, offset: float):
        """Decode the C-contiguous (B, n) float32 LLRs; returns (hard (B, n), ok (B,), iterations (B,)).

        algorithm: 'minsum' (``_cpu.ldpc_decode_minsum_i16``, layer-parallel 16-bit), 'minsum-serial'
        (``_cpu.ldpc_decode_minsum_f32``, float32 check by check) or 'sum-product' (float64).

        A CuPy ``llr`` runs the min-sum GPU kernel (same outputs, as CuPy arrays)."""
        if get_array_module(llr) is not np:
            from ...gpu.launch import default_launcher  # noqa: PLC0415
            return self.decode_device(llr, max_iter, algorithm, scale, offset, default_launcher())
        if algorithm == "minsum":
            return _cpu.ldpc_decode_minsum_i16(llr, self.lay_ptr, self.lay_v0, self.lay_rho, self.lay_cnt,
                                               self.lay_delta, self.dec_old, max_iter, float(scale), float(offset),
                                               self.layer_deg_max, numba.get_num_threads(), LLR_CLIP)
        if algorithm == "minsum-serial":
            return _cpu.ldpc_decode_minsum_f32(llr, self.dec_ptr, self.dec_var, self.dec_old, max_iter,
                                               np.float32(scale), np.float32(offset), self.dc_max,
                                               numba.get_num_threads())
        if algorithm == "sum-product":
            return _cpu.ldpc_decode_sp_f64(llr.astype(np.float64), self.dec_ptr, self.dec_var,
                                           self.dec_old, max_iter, self.dc_max)
        raise ConfigError(f"DVB-S2 LDPC decode: algorithm must be 'minsum', 'minsum-serial' or 'sum-product', "
                          f"got {algorithm!r}")

    def decode_device(self, llr, max_iter: int, algorithm: str, scale: float, offset: float, launcher):
        """The kernel path (``kernels/ldpc_minsum.cu``) on ``launcher``'s arrays (CuPy on a GPU, or
        NumPy under the tests' host emulation); min-sum only.

        Each algorithm runs the bit-exact twin of its CPU kernel: 'minsum' the 16-bit
        layer-parallel kernel (``kernels/ldpc_layered_i16.cu``), 'minsum-serial' the float32
        serial-order kernel (``kernels/ldpc_minsum.cu``); 'sum-product' has no GPU kernel."""
        from . import _gpu  # noqa: PLC0415
        if algorithm == "minsum":
            return _gpu.ldpc_decode_layered_i16_gpu(llr, self, max_iter, scale, offset, launcher)
        if algorithm == "minsum-serial":
            return _gpu.ldpc_decode_minsum_gpu(llr, self, max_iter, scale, offset, launcher)
        raise BackendUnavailable(f"DVB-S2 LDPC decode: the GPU kernels implement 'minsum' and 'minsum-serial', "
                                 f"got algorithm={algorithm!r}; pass a NumPy array for {algorithm!r}")
