# SPDX-License-Identifier: Apache-2.0
"""Numba kernels of the DVB-S2 LDPC and BCH codes (the reviewed CPU reference).

Conventions: bits are uint8 0/1; LLRs are float32 with **positive = bit 0**. Every kernel takes a
2-D C-contiguous batch ``(frames, length)``; the Python wrappers in ``ldpc.py``/``bch.py`` do the
reshaping and validation.

LDPC min-sum decoders (both layered: each check sees the posteriors already updated by the checks
processed before it, about half the iterations of flooding):

* ``ldpc_decode_minsum_i16`` (the default, ``algorithm="minsum"``): one frame per worker thread;
  the 360 checks of a DVB-S2 layer (q-structure) are updated at once, as loops over 360 int16
  values (32 per AVX-512 instruction); 16-bit fixed point with per-frame LLR scaling; in each
  layer the few variables met twice (every DVB-S2 code has some) add their message changes.
* ``ldpc_decode_minsum_f32`` (``algorithm="minsum-serial"``): float32, check after check in the
  quasi-cyclic order of ``LDPCGraph``; each worker thread (one ``prange`` task per contiguous chunk
  of the batch) decodes up to ``LANES`` frames at once, frame-interleaved (``L[v, lane]``,
  ``R[e, lane]``); a lane whose frame has converged is refilled with the next frame at once. The
  GPU kernel (kernels/ldpc_minsum.cu) reproduces this one bit for bit.
"""
from __future__ import annotations

import sys

import numba as nb
import numpy as np

_LITTLE_ENDIAN = sys.byteorder == "little"
LANES = 32  # frames per SIMD block of the min-sum decoder (batches smaller than this use one block)


# --------------------------------------------------------------------------------------------
# LDPC encoding: information part (parity accumulator addresses) then the accumulator
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, parallel=True)
def ldpc_encode(u, var_ptr, var_chk, m):
    """Parity bits ``p`` (B, m) of the IRA code for information ``u`` (B, k).

    ``var_chk[var_ptr[i]:var_ptr[i+1]]`` are the parity accumulator addresses of information bit
    i, i.e. (x + (i mod 360) q) mod m for the addresses x of its table row (EN 302 307-1 5.3.2).
    """
    nb_, k = u.shape
    p = np.zeros((nb_, m), dtype=np.uint8)
    for b in nb.prange(nb_):
        acc = np.zeros(m, dtype=np.uint8)
        for i in range(k):
            if u[b, i]:
                for e in range(var_ptr[i], var_ptr[i + 1]):
                    acc[var_chk[e]] ^= 1
        s = np.uint8(0)
        for r in range(m):          # p_i = p_i xor p_{i-1}, i = 1..m-1
            s ^= acc[r]
            p[b, r] = s
    return p


@nb.njit(cache=True, parallel=True)
def ldpc_syndrome_ok(c, chk_ptr, chk_var):
    """True per frame where the hard bits ``c`` (B, n) satisfy every parity check."""
    nb_ = c.shape[0]
    m = chk_ptr.shape[0] - 1
    ok = np.ones(nb_, dtype=np.bool_)
    for b in nb.prange(nb_):
        for r in range(m):
            s = 0
            for e in range(chk_ptr[r], chk_ptr[r + 1]):
                s ^= c[b, chk_var[e]]
            if s:
                ok[b] = False
                break
    return ok


# --------------------------------------------------------------------------------------------
# Layered normalized/offset min-sum, float32, LANES frames per SIMD block
# --------------------------------------------------------------------------------------------
# The lane loops take the lane count as a run-time value on purpose: with a compile-time trip
# count LLVM unrolls them fully and the SLP vectorizer then gives up (it cannot prove that the
# message and posterior arrays do not alias); a run-time count keeps them loops, which the loop
# vectorizer turns into AVX code guarded by one run-time overlap check.
@nb.njit(cache=True, fastmath=True)
def _syndrome_lanes(L, chk_ptr, chk_var, bad, par, lanes):
    """bad[l] = 1 where the hard decisions of lane l violate at least one check."""
    m = chk_ptr.shape[0] - 1
    for l in range(lanes):
        bad[l] = 0
    for r in range(m):
        for l in range(lanes):
            par[l] = 0
        for e in range(chk_ptr[r], chk_ptr[r + 1]):
            v = chk_var[e]
            for l in range(lanes):
                par[l] ^= np.int32(L[v, l] < 0)
        for l in range(lanes):
            bad[l] |= par[l]


@nb.njit(cache=True, fastmath=True)
def _minsum_iteration(L, R, T, M1, M2, SG, K, chk_ptr, chk_var, alpha, beta, lanes):
    """One layered min-sum iteration over all checks, in place on L (n, lanes) and R (E, lanes).

    K[l] is 1, or 0 for a lane whose stored messages R are stale (a frame just loaded): its old
    check-to-variable messages are then read as zero.
    """
    m = chk_ptr.shape[0] - 1
    big = np.float32(3.0e38)
    zero = np.float32(0.0)
    for r in range(m):
        e0 = chk_ptr[r]
        e1 = chk_ptr[r + 1]
        for l in range(lanes):
            M1[l] = big
            M2[l] = big
            SG[l] = np.float32(1.0)
        for e in range(e0, e1):
            v = chk_var[e]
            i = e - e0
            for l in range(lanes):
                t = L[v, l] - K[l] * R[e, l]   # variable-to-check message
                T[i, l] = t
                at = abs(t)
                m1 = M1[l]
                M2[l] = min(M2[l], max(at, m1))
                M1[l] = min(m1, at)
                SG[l] = -SG[l] if t < 0 else SG[l]
        for l in range(lanes):
            M1[l] = alpha * max(M1[l] - beta, zero)
            M2[l] = alpha * max(M2[l] - beta, zero)
        for e in range(e0, e1):
            v = chk_var[e]
            i = e - e0
            for l in range(lanes):
                t = T[i, l]
                # the edge holding the minimum gets the second minimum (on a tie min1 == min2)
                at = alpha * max(abs(t) - beta, zero)
                mag = M2[l] if at == M1[l] else M1[l]
                s = -SG[l] if t < 0 else SG[l]
                rr = s * mag
                R[e, l] = rr
                L[v, l] = t + rr


@nb.njit(cache=True)
def _channel_is_codeword(llr, f, old, chk_ptr, chk_var):
    """True if the channel hard decisions of frame f satisfy every check (read from its row)."""
    m = chk_ptr.shape[0] - 1
    for r in range(m):
        s = 0
        for e in range(chk_ptr[r], chk_ptr[r + 1]):
            s ^= llr[f, old[chk_var[e]]] < 0
        if s:
            return False
    return True


@nb.njit(cache=True)
def _next_frame(llr, nxt, stop, old, chk_ptr, chk_var, hard, ok, iters):
    """Index of the next frame in [nxt, stop) that needs decoding (frames whose channel decisions
    are already a codeword are written out on the way, with 0 iterations), or -1; and the new nxt."""
    n = llr.shape[1]
    while nxt < stop:
        f = nxt
        nxt += 1
        if _channel_is_codeword(llr, f, old, chk_ptr, chk_var):
            ok[f] = True
            iters[f] = 0
            for v in range(n):
                hard[f, v] = np.uint8(llr[f, v] < 0)
        else:
            return f, nxt
    return -1, nxt


@nb.njit(cache=True, fastmath=True)
def _swap_lanes(L, llr, old, hard, fin, nfin, outf, newf, K):
    """For the nfin lanes listed in fin: write the hard decisions of frame outf[l] and load frame
    newf[l] (or an idle all-zero word where newf[l] < 0); one pass over the variables."""
    n = L.shape[0]
    for v in range(n):
        ov = old[v]
        for i in range(nfin):
            l = fin[i]
            hard[outf[l], ov] = np.uint8(L[v, l] < 0)
            g = newf[l]
            L[v, l] = llr[g, ov] if g >= 0 else np.float32(1.0)
    for i in range(nfin):
        K[fin[i]] = np.float32(0.0)     # the lane's stored messages are stale: read them as 0


@nb.njit(cache=True, parallel=True)
def ldpc_decode_minsum_f32(llr, chk_ptr, chk_var, old, max_iter, alpha, beta, dc_max, nthr):
    """Layered min-sum decoding of a batch ``llr`` (B, n) float32 (positive = bit 0).

    ``chk_ptr``/``chk_var``: checks in processing order with the decoder's variable numbering;
    ``old[v]``: the codeword index of stored variable v. Check-to-variable magnitude:
    ``alpha * max(min - beta, 0)`` (alpha < 1: normalized, beta > 0: offset min-sum).

    Scheduling: the batch is split into one contiguous chunk per worker (``nthr``); a worker
    decodes up to LANES frames at once (one SIMD lane each) and, as soon as a frame has satisfied
    all checks (or reached max_iter), writes it out and loads the next frame of its chunk into
    that lane, so a slow frame never holds the others. Returns (hard bits (B, n) uint8, parity_ok
    (B,) bool, iterations (B,) int32): the hard decisions of the first iteration after which all
    checks held (iterations = 0 when the channel decisions already did), else those after max_iter.
    """
    nfr, n = llr.shape
    ne = chk_var.shape[0]
    hard = np.zeros((nfr, n), dtype=np.uint8)
    ok = np.zeros(nfr, dtype=np.bool_)
    iters = np.full(nfr, max_iter, dtype=np.int32)
    if nfr == 0:
        return hard, ok, iters
    chunk = (nfr + nthr - 1) // nthr
    nwork = (nfr + chunk - 1) // chunk
    a = np.float32(alpha)
    bt = np.float32(beta)
    for w in nb.prange(nwork):
        start = w * chunk
        stop = min(nfr, start + chunk)
        lanes = min(LANES, stop - start)
        L = np.empty((n, lanes), dtype=np.float32)
        R = np.zeros((ne, lanes), dtype=np.float32)
        T = np.empty((dc_max, lanes), dtype=np.float32)
        M1 = np.empty(lanes, dtype=np.float32)
        M2 = np.empty(lanes, dtype=np.float32)
        SG = np.empty(lanes, dtype=np.float32)
        K = np.ones(lanes, dtype=np.float32)
        bad = np.zeros(lanes, dtype=np.int32)
        par = np.zeros(lanes, dtype=np.int32)
        frame = np.full(lanes, -1, dtype=np.int64)
        outf = np.zeros(lanes, dtype=np.int64)
        lit = np.zeros(lanes, dtype=np.int32)
        fin = np.zeros(lanes, dtype=np.int64)
        nxt = start
        active = 0
        for l in range(lanes):
            f, nxt = _next_frame(llr, nxt, stop, old, chk_ptr, chk_var, hard, ok, iters)
            frame[l] = f
            if f >= 0:
                active += 1
            for v in range(n):
                L[v, l] = llr[f, old[v]] if f >= 0 else np.float32(1.0)
        while active > 0:
            _minsum_iteration(L, R, T, M1, M2, SG, K, chk_ptr, chk_var, a, bt, lanes)
            for l in range(lanes):
                K[l] = np.float32(1.0) if frame[l] >= 0 else np.float32(0.0)
            _syndrome_lanes(L, chk_ptr, chk_var, bad, par, lanes)
            nfin = 0
            for l in range(lanes):
                f = frame[l]
                if f < 0:
                    continue
                lit[l] += 1
                if bad[l] == 0 or lit[l] >= max_iter:
                    ok[f] = bad[l] == 0
                    iters[f] = lit[l] if bad[l] == 0 else max_iter
                    outf[l] = f
                    fin[nfin] = l
                    nfin += 1
                    g, nxt = _next_frame(llr, nxt, stop, old, chk_ptr, chk_var, hard, ok, iters)
                    frame[l] = g
                    lit[l] = 0
                    if g < 0:
                        active -= 1
            if nfin > 0:
                _swap_lanes(L, llr, old, hard, fin, nfin, outf, frame, K)
    return hard, ok, iters


# --------------------------------------------------------------------------------------------
# Layered min-sum, 16-bit fixed point, SIMD over the 360 checks of a DVB-S2 layer (the default)
# --------------------------------------------------------------------------------------------
# DVB-S2 structure: the checks r = i + q*j (j = 0..359) form layer i. An information group g
# (bits 360g .. 360g+359) with table address x = i + q*b meets layer i in a cyclic shift: bit
# 360g + jv is in check row (jv + b) mod 360; the parity bits of a layer are one contiguous run
# (and the run of the previous layer). So every edge of a layer is 360 consecutive variables
# meeting the 360 rows rotated by a shift ``rho``, and each step of the check-node update is one
# loop over 360 consecutive int16 values (32 per AVX-512 instruction).
# Rotation without a split loop: the per-row state (min1, min2, sign) lives in a buffer of 720
# rows; edge e updates rows rho_e + jv (jv = 0..cnt-1), so row j is spread over buffer rows j
# and j + 360, folded together (min, min-of-max, xor: all associative) before the messages go
# out, and mirrored back to both halves for the second pass.
# Repeats: in every DVB-S2 code some groups meet a layer twice (two table addresses with equal
# x mod q). Both edges then read the same posteriors; the second write adds its message change
# (L += r_new - r_old) instead of overwriting (``lay_delta``), so no update is lost.
# Indices are uint64 on purpose: Numba's negative-index wraparound test on signed indices keeps
# LLVM from vectorizing the loops; with unsigned indices each loop becomes plain AVX-512 code.
Z = 360                   # checks per layer (rows) / information bits per group
Z2 = 720                  # row buffer (two copies of the rows, see above)
SAT = 32767               # int16 saturation: messages and posteriors lie in [-SAT, SAT]
FIXED_POINT_MEAN = 1024.0  # channel LLRs are scaled so that their frame mean |llr| maps here
# The row state of a layer lives in ONE int16 array W of 5 * Z2 values at these offsets: with a
# single base and constant distances LLVM proves the accesses independent and drops most of
# the run-time overlap checks it puts in front of every vectorized loop (12 % faster than five
# arrays). M1/M2: running min1/min2 of |t|; S: xor of the t (sign bit = parity of the negative
# inputs); M1S/M2S: the scaled magnitudes sent back.
_W_M1 = np.uint64(0)
_W_M2 = np.uint64(Z2)
_W_S = np.uint64(2 * Z2)
_W_M1S = np.uint64(3 * Z2)
_W_M2S = np.uint64(4 * Z2)


@nb.njit(fastmath=True, inline="always")
def _sat16(x):
    """int32 -> int16 saturated to [-SAT, SAT] (the first clamp lets LLVM use vpaddsw/vpsubsw)."""
    x = min(max(x, -32768), 32767)
    return max(np.int16(x), np.int16(-SAT))


@nb.njit(fastmath=True, inline="always")
def _i16_pass1(L, R, T, v0, rb, tb, rho, cnt, W):
    """Variable-to-check messages t = L - R of one edge; min1/min2/sign-parity into the row buffer."""
    uv = np.uint64(v0)
    ur = np.uint64(rb)
    ut = np.uint64(tb)
    uk = np.uint64(rho)
    for jj in range(np.uint64(cnt)):
        t = _sat16(np.int32(L[uv + jj]) - np.int32(R[ur + jj]))
        T[ut + jj] = t
        a = abs(t)
        k = uk + jj
        m1 = W[k + _W_M1]
        W[k + _W_M2] = min(W[k + _W_M2], max(a, m1))
        W[k + _W_M1] = min(m1, a)
        W[k + _W_S] ^= t                    # sign bit of S: parity of the negative inputs


@nb.njit(fastmath=True, inline="always")
def _i16_pass2(L, R, T, v0, rb, tb, rho, cnt, W):
    """Check-to-variable messages of one edge and the new posteriors L = t + r."""
    uv = np.uint64(v0)
    ur = np.uint64(rb)
    ut = np.uint64(tb)
    uk = np.uint64(rho)
    for jj in range(np.uint64(cnt)):
        t = T[ut + jj]
        k = uk + jj
        x1 = W[k + _W_M1S]
        x2 = W[k + _W_M2S]
        mag = x2 if abs(t) == W[k + _W_M1] else x1     # the edge holding the minimum gets min2
        r = -mag if (W[k + _W_S] ^ t) < 0 else mag     # sign: parity of the other inputs
        R[ur + jj] = r
        L[uv + jj] = _sat16(np.int32(t) + np.int32(r))


@nb.njit(fastmath=True, inline="always")
def _i16_pass2_delta(L, R, T, v0, rb, tb, rho, cnt, W):
    """As _i16_pass2 for a repeated edge: L += r_new - r_old (L already holds an update of this layer)."""
    uv = np.uint64(v0)
    ur = np.uint64(rb)
    ut = np.uint64(tb)
    uk = np.uint64(rho)
    for jj in range(np.uint64(cnt)):
        t = T[ut + jj]
        k = uk + jj
        x1 = W[k + _W_M1S]
        x2 = W[k + _W_M2S]
        mag = x2 if abs(t) == W[k + _W_M1] else x1
        r = -mag if (W[k + _W_S] ^ t) < 0 else mag
        x = np.int32(L[uv + jj]) + np.int32(r) - np.int32(R[ur + jj])
        R[ur + jj] = r
        L[uv + jj] = np.int16(min(max(x, -SAT), SAT))


@nb.njit(fastmath=True, inline="always")
def _i16_rows_init(W):
    for j in range(np.uint64(Z2)):
        W[j + _W_M1] = SAT
        W[j + _W_M2] = SAT
        W[j + _W_S] = 0


@nb.njit(fastmath=True, inline="always")
def _i16_rows_fold(W, A, bq):
    """Fold buffer rows j and j+360, scale the magnitudes (A/2^15 * max(m - bq, 0)), mirror back."""
    uz = np.uint64(Z)
    for j in range(np.uint64(Z)):
        a1 = W[j + _W_M1]
        b1 = W[j + uz + _W_M1]
        m1 = min(a1, b1)
        m2 = min(min(W[j + _W_M2], W[j + uz + _W_M2]), max(a1, b1))
        s = W[j + _W_S] ^ W[j + uz + _W_S]
        s1 = np.int16((max(np.int32(m1) - bq, 0) * A + 16384) >> 15)
        s2 = np.int16((max(np.int32(m2) - bq, 0) * A + 16384) >> 15)
        W[j + _W_M1] = m1
        W[j + uz + _W_M1] = m1
        W[j + _W_S] = s
        W[j + uz + _W_S] = s
        W[j + _W_M1S] = s1
        W[j + uz + _W_M1S] = s1
        W[j + _W_M2S] = s2
        W[j + uz + _W_M2S] = s2


@nb.njit(fastmath=True, inline="always")
def _i16_parity(L, v0, rho, cnt, P):
    uv = np.uint64(v0)
    uk = np.uint64(rho)
    for jj in range(np.uint64(cnt)):
        P[uk + jj] ^= L[uv + jj]


@nb.njit(cache=True, fastmath=True)
def _i16_syndrome_ok(L, lay_ptr, lay_v0, lay_rho, lay_cnt, P):
    """True when the signs of L satisfy every check (stops at the first layer with a failure)."""
    q = lay_ptr.shape[0] - 1
    uz = np.uint64(Z)
    for i in range(q):
        for j in range(np.uint64(Z2)):
            P[j] = 0
        for e in range(lay_ptr[i], lay_ptr[i + 1]):
            _i16_parity(L, lay_v0[e], lay_rho[e], lay_cnt[e], P)
        acc = np.int16(0)
        for j in range(np.uint64(Z)):
            acc |= P[j] ^ P[j + uz]
        if acc < 0:
            return False
    return True


@nb.njit(cache=True, fastmath=True)
def _i16_iteration(L, R, T, lay_ptr, lay_v0, lay_rho, lay_cnt, lay_delta, W, A, bq):
    """One layered min-sum iteration over the q layers, in place on L (n,) and R (edges * 360,)."""
    q = lay_ptr.shape[0] - 1
    for i in range(q):
        e0 = lay_ptr[i]
        e1 = lay_ptr[i + 1]
        _i16_rows_init(W)
        for e in range(e0, e1):
            _i16_pass1(L, R, T, lay_v0[e], e * Z, (e - e0) * Z, lay_rho[e], lay_cnt[e], W)
        _i16_rows_fold(W, A, bq)
        for e in range(e0, e1):
            if lay_delta[e]:
                _i16_pass2_delta(L, R, T, lay_v0[e], e * Z, (e - e0) * Z, lay_rho[e], lay_cnt[e],
                                 W)
            else:
                _i16_pass2(L, R, T, lay_v0[e], e * Z, (e - e0) * Z, lay_rho[e], lay_cnt[e], W)


@nb.njit(cache=True, parallel=True)
def ldpc_decode_minsum_i16(llr, lay_ptr, lay_v0, lay_rho, lay_cnt, lay_delta, old, max_iter, alpha, beta,
                           deg_max, nthr, clip):
    """Layered min-sum of a batch ``llr`` (B, n) float32 (positive = bit 0), 16-bit fixed point.

    Layers as built by ``LDPCGraph`` (``lay_*``: edge e of layer i, ``lay_ptr[i] <= e <
    lay_ptr[i+1]``, is the variables ``lay_v0[e] + jv`` (decoder numbering) meeting rows
    ``(jv + lay_rho[e]) mod 360``, jv < ``lay_cnt[e]``; ``lay_delta[e]``: a repeat in its layer);
    ``old[v]``: codeword index of stored variable v; deg_max: largest layer degree.

    Fixed point: LLR magnitudes are first clipped at ``clip``; each frame's LLRs are then scaled so
    that their mean magnitude is FIXED_POINT_MEAN
    (min-sum is scale invariant; the offset beta is scaled alike) and rounded (a negative LLR
    never rounds to 0, so the channel hard decisions are kept); posteriors and messages
    saturate at +-32767. Check-to-variable magnitude: ``round(alpha * 2^15) / 2^15 *
    max(min - beta, 0)``, rounded to the nearest integer.

    One frame per worker at a time (``nthr`` workers take frames w, w + nthr, ...); a frame stops
    at the first iteration after which all checks hold. Returns (hard bits (B, n) uint8, parity_ok
    (B,) bool, iterations (B,) int32), as ``ldpc_decode_minsum_f32``.
    """
    nfr, n = llr.shape
    ne = lay_v0.shape[0]
    hard = np.zeros((nfr, n), dtype=np.uint8)
    ok = np.zeros(nfr, dtype=np.bool_)
    iters = np.full(nfr, max_iter, dtype=np.int32)
    if nfr == 0:
        return hard, ok, iters
    A = np.int32(round(alpha * 32768.0))
    nw = min(nthr, nfr)
    for w in nb.prange(nw):
        L = np.empty(n, dtype=np.int16)
        R = np.empty(ne * Z, dtype=np.int16)
        T = np.empty(deg_max * Z, dtype=np.int16)
        W = np.empty(5 * Z2, dtype=np.int16)
        P = np.empty(Z2, dtype=np.int16)
        for f in range(w, nfr, nw):
            tot = 0.0
            for v in range(n):
                tot += min(abs(llr[f, v]), clip)
            sc = FIXED_POINT_MEAN * n / tot if tot > 0.0 else 1.0
            for v in range(n):
                x = min(max(llr[f, old[v]], -clip), clip)
                x = min(max(x * sc, -float(SAT)), float(SAT))
                qx = round(x)
                if x < 0.0 and qx == 0.0:
                    qx = -1.0
                L[v] = np.int16(qx)
            bq = np.int32(round(min(beta * sc, float(SAT))))
            R[:] = 0
            it = 0
            good = _i16_syndrome_ok(L, lay_ptr, lay_v0, lay_rho, lay_cnt, P)
            while (not good) and it < max_iter:
                it += 1
                _i16_iteration(L, R, T, lay_ptr, lay_v0, lay_rho, lay_cnt, lay_delta, W, A, bq)
                good = _i16_syndrome_ok(L, lay_ptr, lay_v0, lay_rho, lay_cnt, P)
            ok[f] = good
            iters[f] = it if good else max_iter
            for v in range(n):
                hard[f, old[v]] = np.uint8(L[v] < 0)
    return hard, ok, iters


@nb.njit(cache=True, fastmath=True)
def llr_outlier_rows(llr, clip, ratio):
    """(B,) bool: frames of ``llr`` (B, n) whose mean ``min(|llr|, clip)`` over all n bits (the
    scale of ``ldpc_decode_minsum_i16``) exceeds ``ratio`` times the level reached by at least 10 %
    of their non-zero values, i.e. a minority of huge LLRs dominates the scale (DVBS2Code.decode
    clips such frames first). Serial: about 1 ms per 2 M LLRs, less than a thread pool's start-up."""
    nfr, n = llr.shape
    out = np.zeros(nfr, dtype=np.bool_)
    c = np.float32(clip)
    zero = np.float32(0.0)
    for f in range(nfr):
        tot = 0.0
        nnz = 0
        mx = zero
        for v in range(n):
            a = min(abs(llr[f, v]), c)
            tot += a
            mx = max(mx, a)
            if a > zero:
                nnz += 1
        # flagged => fewer than nnz/10 values hold more than 15/16 of tot => max > 9.375 tot/nnz
        if nnz == 0 or mx * nnz <= 9.0 * tot:
            continue
        thr = np.float32(tot / (ratio * n))
        high = 0
        for v in range(n):             # thr <= clip / ratio: no need to clip here
            if abs(llr[f, v]) >= thr:
                high += 1
        out[f] = 10 * high < nnz
    return out


# --------------------------------------------------------------------------------------------
# Layered sum-product (float64, tanh rule in the phi domain): the accuracy reference
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, fastmath=False, inline="always")
def _phi(x):
    # phi(x) = -log(tanh(x/2)) = log((e^x + 1)/(e^x - 1)), an involution on x > 0
    if x < 1e-12:
        x = 1e-12
    if x > 40.0:
        return 2.0 * np.exp(-x)
    return np.log1p(2.0 / np.expm1(x))


@nb.njit(cache=True, inline="always")
def _all_checks_hold(L, chk_ptr, chk_var, m):
    """True when the hard decisions of the posterior LLRs ``L`` satisfy all ``m`` parity checks."""
    for r in range(m):
        s = 0
        for e in range(chk_ptr[r], chk_ptr[r + 1]):
            s ^= L[chk_var[e]] < 0
        if s:
            return False
    return True


@nb.njit(cache=True, parallel=True)
def ldpc_decode_sp_f64(llr, chk_ptr, chk_var, old, max_iter, dc_max):
    """Layered sum-product (exact tanh rule via phi), float64; same outputs as the min-sum kernel."""
    nfr, n = llr.shape
    m = chk_ptr.shape[0] - 1
    ne = chk_var.shape[0]
    hard = np.zeros((nfr, n), dtype=np.uint8)
    ok = np.zeros(nfr, dtype=np.bool_)
    iters = np.full(nfr, max_iter, dtype=np.int32)
    for f in nb.prange(nfr):
        L = np.empty(n, dtype=np.float64)
        for v in range(n):
            L[v] = llr[f, old[v]]
        R = np.zeros(ne, dtype=np.float64)
        T = np.empty(dc_max, dtype=np.float64)
        P = np.empty(dc_max, dtype=np.float64)
        it = 0
        good = _all_checks_hold(L, chk_ptr, chk_var, m)
        while (not good) and it < max_iter:
            it += 1
            for r in range(m):
                e0 = chk_ptr[r]
                e1 = chk_ptr[r + 1]
                tot = 0.0
                neg = False
                for e in range(e0, e1):
                    i = e - e0
                    t = L[chk_var[e]] - R[e]
                    T[i] = t
                    p = _phi(abs(t))
                    P[i] = p
                    tot += p
                    neg ^= t < 0
                for e in range(e0, e1):
                    i = e - e0
                    t = T[i]
                    mag = _phi(max(tot - P[i], 0.0))
                    sn = neg ^ (t < 0)
                    rr = -mag if sn else mag
                    R[e] = rr
                    L[chk_var[e]] = t + rr
            good = _all_checks_hold(L, chk_ptr, chk_var, m)
        ok[f] = good
        iters[f] = it if good else max_iter
        for v in range(n):
            hard[f, old[v]] = np.uint8(L[v] < 0)
    return hard, ok, iters


# --------------------------------------------------------------------------------------------
# BCH: table-driven division and the algebraic decoder over GF(2^m)
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def _reg_step_byte(reg, table, byte):
    """reg <- (reg << 8) xor table[(reg top byte) xor byte]; reg is left-aligned in nw words."""
    nw = reg.shape[0]
    idx = ((reg[0] >> np.uint64(56)) ^ np.uint64(byte)) & np.uint64(0xFF)
    for w in range(nw - 1):
        reg[w] = (reg[w] << np.uint64(8)) | (reg[w + 1] >> np.uint64(56))
    reg[nw - 1] = reg[nw - 1] << np.uint64(8)
    for w in range(nw):
        reg[w] ^= table[idx, w]


@nb.njit(cache=True, inline="always")
def _reg_step_bit(reg, gen, bit):
    nw = reg.shape[0]
    fb = (reg[0] >> np.uint64(63)) ^ np.uint64(bit)
    for w in range(nw - 1):
        reg[w] = (reg[w] << np.uint64(1)) | (reg[w + 1] >> np.uint64(63))
    reg[nw - 1] = reg[nw - 1] << np.uint64(1)
    if fb & np.uint64(1):
        for w in range(nw):
            reg[w] ^= gen[w]


@nb.njit(cache=True)
def _remainder(bits, b, nbits, table, gen, reg):
    """reg <- (bits[b, :nbits] as a polynomial, first bit = highest degree) * x^P mod g.

    Fast path (every DVB-S2 BCH code: P <= 192, nw <= 3 words, on a little-endian host): the
    register lives in three scalars and each group of 8 bits (uint8 0/1, first bit = MSB) is
    packed by one multiply: for the 8 bytes read as a little-endian uint64 x,
    (x * 0x8040201008040201) >> 56 puts bit i of the group at position 7 - i (no carries).
    """
    nw = reg.shape[0]
    nbytes = nbits // 8
    if nw <= 3 and _LITTLE_ENDIAN and bits.shape[1] % 8 == 0:
        s8 = np.uint64(8)
        s56 = np.uint64(56)
        ff = np.uint64(0xFF)
        magic = np.uint64(0x8040201008040201)
        words = bits[b].view(np.uint64)
        r0 = np.uint64(0)
        r1 = np.uint64(0)
        r2 = np.uint64(0)
        for i in range(nbytes):
            idx = ((r0 >> s56) ^ ((words[i] * magic) >> s56)) & ff
            r0 = ((r0 << s8) | (r1 >> s56)) ^ table[idx, 0]
            if nw > 1:
                r1 = ((r1 << s8) | (r2 >> s56)) ^ table[idx, 1]
            if nw > 2:
                r2 = (r2 << s8) ^ table[idx, 2]
        reg[0] = r0
        if nw > 1:
            reg[1] = r1
        if nw > 2:
            reg[2] = r2
    else:
        for w in range(nw):
            reg[w] = np.uint64(0)
        for i in range(nbytes):
            byte = 0
            for j in range(8):
                byte = (byte << 1) | bits[b, 8 * i + j]
            _reg_step_byte(reg, table, byte)
    for i in range(8 * nbytes, nbits):
        _reg_step_bit(reg, gen, bits[b, i])


@nb.njit(cache=True, parallel=True)
def bch_parity(u, table, gen, nparity):
    """BCH parity (B, P) of the messages u (B, k): the remainder of u(x) x^P modulo g(x)."""
    nb_, k = u.shape
    nw = table.shape[1]
    out = np.empty((nb_, nparity), dtype=np.uint8)
    for b in nb.prange(nb_):
        reg = np.zeros(nw, dtype=np.uint64)
        _remainder(u, b, k, table, gen, reg)
        for i in range(nparity):
            out[b, i] = np.uint8((reg[i // 64] >> np.uint64(63 - i % 64)) & np.uint64(1))
    return out


@nb.njit(cache=True)
def _gf_mul(a, b, gexp, glog):
    if a == 0 or b == 0:
        return 0
    return gexp[glog[a] + glog[b]]


@nb.njit(cache=True, parallel=True)
def bch_decode(c, table, gen, nparity, t, gexp, glog, order):
    """Correct up to t bit errors in place in each row of c (B, N) (BCH codeword, k + P bits).

    Returns per frame the number of corrected bits, 0 for a codeword, -1 where the decoder fails
    (more than t errors detected: the error locator has the wrong number of roots in the
    shortened code). Syndromes are taken from the remainder r(x) x^P mod g(x),
    S_j = rem(alpha^j) alpha^(-jP); then Berlekamp-Massey and a Chien search over the N positions.
    """
    nb_, ncw = c.shape
    nw = table.shape[1]
    res = np.zeros(nb_, dtype=np.int32)
    for b in nb.prange(nb_):
        reg = np.zeros(nw, dtype=np.uint64)
        _remainder(c, b, ncw, table, gen, reg)
        nz = False
        for w in range(nw):
            if reg[w] != 0:
                nz = True
        if not nz:
            continue
        # syndromes S_1..S_2t (index 0 unused)
        S = np.zeros(2 * t + 1, dtype=np.int64)
        for j in range(1, 2 * t + 1):
            acc = 0
            # Horner over the P remainder coefficients, highest degree first
            aj = gexp[j % order]
            for i in range(nparity):
                acc = _gf_mul(acc, aj, gexp, glog)
                if (reg[i // 64] >> np.uint64(63 - i % 64)) & np.uint64(1):
                    acc ^= 1
            if acc != 0:
                sh = (order - (j * nparity) % order) % order
                acc = gexp[glog[acc] + sh]
            S[j] = acc
        # Berlekamp-Massey
        lam = np.zeros(2 * t + 2, dtype=np.int64)
        bpol = np.zeros(2 * t + 2, dtype=np.int64)
        tmp = np.zeros(2 * t + 2, dtype=np.int64)
        lam[0] = 1
        bpol[0] = 1
        ll = 0
        mm = 1
        bb = 1
        for nstep in range(2 * t):
            d = S[nstep + 1]
            for i in range(1, ll + 1):
                d ^= _gf_mul(lam[i], S[nstep + 1 - i], gexp, glog)
            if d == 0:
                mm += 1
            else:
                coef = gexp[(glog[d] - glog[bb] + order) % order]
                if 2 * ll <= nstep:
                    for i in range(2 * t + 2):
                        tmp[i] = lam[i]
                    for i in range(mm, 2 * t + 2):
                        lam[i] ^= _gf_mul(coef, bpol[i - mm], gexp, glog)
                    ll = nstep + 1 - ll
                    for i in range(2 * t + 2):
                        bpol[i] = tmp[i]
                    bb = d
                    mm = 1
                else:
                    for i in range(mm, 2 * t + 2):
                        lam[i] ^= _gf_mul(coef, bpol[i - mm], gexp, glog)
                    mm += 1
        deg = 0
        for i in range(2 * t + 2):
            if lam[i] != 0:
                deg = i
        if deg != ll or ll > t or ll == 0:
            res[b] = -1
            continue
        # Chien search: error at degree d <=> lam(alpha^-d) == 0; bit index = ncw - 1 - d
        lg = np.zeros(ll + 1, dtype=np.int64)
        for i in range(1, ll + 1):
            lg[i] = glog[lam[i]] if lam[i] != 0 else -1
        pos = np.empty(ll, dtype=np.int64)
        nroot = 0
        for dpos in range(ncw):
            acc = 1
            for i in range(1, ll + 1):
                if lg[i] >= 0:
                    acc ^= gexp[(lg[i] + (order - (dpos * i) % order)) % order]
            if acc == 0:
                if nroot < ll:
                    pos[nroot] = ncw - 1 - dpos
                nroot += 1
        if nroot != ll:
            res[b] = -1
            continue
        for i in range(ll):
            c[b, pos[i]] ^= 1
        res[b] = ll
    return res
