# SPDX-License-Identifier: Apache-2.0
"""CPU (Numba) reference implementation of the SCPPM iterative decoder.

Written to read like the algorithm (Moision & Hamkins, IPN PR 42-161): per codeword, a serial
turbo loop between

* the inner SISO on the accumulator + PPM trellis: 2 states (last accumulator bit), M parallel
  edges per state (one per PPM symbol), S = 15120 / log2 M stages;
* the outer SISO on the 4-state (5,7,7) trellis, k_hat stages, terminated in state 0;

exchanging extrinsic LLRs through puncturing and the bit interleaver. LLR sign convention: positive
means bit 0; an edge metric adds ``-b * L`` for a bit b with a priori LLR L. ``max_log`` selects
max-log-MAP; otherwise exact log-MAP (log-sum-exp with the maximum factored out).

The loop stops for a codeword as soon as its CRC-32 checks (hard decisions on the outer a
posteriori LLRs) or after ``max_iter`` iterations. Codewords are independent: one ``prange`` lane each.

The decoder's exact log-MAP path is :func:`turbo_decode_stages` (stage-vectorised SISOs, same
decisions, soft values equal to rounding; see the notes above it); :func:`turbo_decode` with its
per-stage SISOs is the readable reference it is tested against, and the max-log path.
"""
from __future__ import annotations

import numba as nb
import numpy as np

NEG = -1.0e300
LLR_CLIP = 60.0


@nb.njit(cache=True, inline="always")
def _clip(x):
    if x > LLR_CLIP:
        return LLR_CLIP
    if x < -LLR_CLIP:
        return -LLR_CLIP
    return x


@nb.njit(cache=True, inline="always")
def _edge_metrics(metric, la, edge_bits, m, i, g):
    """g[sigma, s] = channel term of symbol s + a priori term (-sum of LLRs of the 1 bits) of the
    edge leaving state sigma with symbol s, at stage i (log domain)."""
    M = metric.shape[1]
    for sg in range(2):
        for s in range(M):
            a = metric[i, s]
            b = edge_bits[sg, s]
            for t in range(m):
                if (b >> (m - 1 - t)) & 1:
                    a -= la[i * m + t]
            g[sg, s] = a


@nb.njit(cache=True)
def inner_siso(metric, la, edge_bits, m, max_log, le_out, alpha):
    """Accumulator+PPM SISO for one codeword.

    metric : (S, M) float64 channel symbol log-likelihoods (pulse in slot s), any common offset.
    la : (S*m,) a priori LLRs of the accumulator input bits v (interleaved domain).
    edge_bits : (2, M) int64, the m input bits (MSB = first) on the edge leaving state sigma with
        PPM symbol s; the next state is s & 1.
    le_out : (S*m,) written with extrinsic LLRs of v.   alpha : (S+1, 2) scratch.

    The log-domain form, textbook style: the decoder runs it for max-log-MAP; its exact log-MAP
    mode is the reference that the probability-domain :func:`inner_siso_prob` is tested against.
    """
    S, M = metric.shape
    # A priori edge terms are recomputed in each pass (cheap next to the channel term).
    alpha[0, 0] = 0.0
    alpha[0, 1] = NEG
    g = np.empty((2, M))
    for i in range(S):
        _edge_metrics(metric, la, edge_bits, m, i, g)
        n0 = NEG
        n1 = NEG
        for sg in range(2):
            a0 = alpha[i, sg]
            if a0 <= NEG:
                continue
            for s in range(M):
                v = a0 + g[sg, s]
                if s & 1:
                    if max_log:
                        n1 = max(n1, v)
                    else:
                        n1 = max(n1, v) + np.log1p(np.exp(-abs(n1 - v))) if n1 > NEG else v
                else:
                    if max_log:
                        n0 = max(n0, v)
                    else:
                        n0 = max(n0, v) + np.log1p(np.exp(-abs(n0 - v))) if n0 > NEG else v
        mx = max(n0, n1)
        alpha[i + 1, 0] = n0 - mx
        alpha[i + 1, 1] = n1 - mx
    b0 = 0.0
    b1 = 0.0
    e = np.empty(2 * M)
    w = np.empty(2 * M)
    for i in range(S - 1, -1, -1):
        _edge_metrics(metric, la, edge_bits, m, i, g)
        # extrinsic on the m bits of this stage
        mx = NEG
        for sg in range(2):
            for s in range(M):
                v = alpha[i, sg] + g[sg, s] + (b1 if s & 1 else b0)
                e[sg * M + s] = v
                if v > mx:
                    mx = v
        if max_log:
            for t in range(m):
                z0 = NEG
                z1 = NEG
                for sg in range(2):
                    for s in range(M):
                        v = e[sg * M + s]
                        if (edge_bits[sg, s] >> (m - 1 - t)) & 1:
                            if v > z1:
                                z1 = v
                        elif v > z0:
                            z0 = v
                le_out[i * m + t] = _clip(z0 - z1 - la[i * m + t])
        else:
            for j in range(2 * M):
                w[j] = np.exp(e[j] - mx)
            for t in range(m):
                z0 = 1e-300
                z1 = 1e-300
                for sg in range(2):
                    for s in range(M):
                        if (edge_bits[sg, s] >> (m - 1 - t)) & 1:
                            z1 += w[sg * M + s]
                        else:
                            z0 += w[sg * M + s]
                le_out[i * m + t] = _clip(np.log(z0) - np.log(z1) - la[i * m + t])
        # backward recursion: beta_i(sigma) = lse_s g(sigma, s) + beta_{i+1}(s & 1)
        nb0 = NEG
        nb1 = NEG
        for sg in range(2):
            acc = NEG
            if max_log:
                for s in range(M):
                    v = g[sg, s] + (b1 if s & 1 else b0)
                    if v > acc:
                        acc = v
            else:
                mm = NEG
                for s in range(M):
                    v = g[sg, s] + (b1 if s & 1 else b0)
                    if v > mm:
                        mm = v
                ssum = 0.0
                for s in range(M):
                    ssum += np.exp(g[sg, s] + (b1 if s & 1 else b0) - mm)
                acc = mm + np.log(ssum)
            if sg == 0:
                nb0 = acc
            else:
                nb1 = acc
        mx = max(nb0, nb1)
        b0 = nb0 - mx
        b1 = nb1 - mx


@nb.njit(cache=True, inline="always")
def _lse2(a, b, max_log):
    if max_log:
        return max(a, b)
    if a < b:
        a, b = b, a
    if b <= NEG:
        return a
    return a + np.log1p(np.exp(b - a))


@nb.njit(cache=True)
def outer_siso(lc, T, max_log, le_out, app_u, alpha):
    """(5,7,7) SISO, terminated: lc (3T,) a priori LLRs of the mother-code bits (0 = punctured).

    State = 2 u_{t-1} + u_{t-2}. Writes le_out (3T,) extrinsic LLRs and app_u (T,) a posteriori
    LLRs of the input bits. alpha: (T+1, 4) scratch.
    """
    for s in range(4):
        alpha[0, s] = NEG
    alpha[0, 0] = 0.0
    for t in range(T):
        l0 = lc[3 * t]
        l12 = lc[3 * t + 1] + lc[3 * t + 2]
        na = np.full(4, NEG)
        for s in range(4):
            a = alpha[t, s]
            if a <= NEG:
                continue
            u1 = s >> 1
            u2 = s & 1
            for u in range(2):
                c0 = u ^ u2
                c1 = u ^ u1 ^ u2
                v = a - c0 * l0 - c1 * l12
                ns = 2 * u + u1
                na[ns] = _lse2(na[ns], v, max_log)
        mx = max(max(na[0], na[1]), max(na[2], na[3]))
        for s in range(4):
            alpha[t + 1, s] = na[s] - mx
    beta = np.full(4, NEG)
    beta[0] = 0.0
    nbeta = np.empty(4)
    for t in range(T - 1, -1, -1):
        l0 = lc[3 * t]
        l1 = lc[3 * t + 1]
        l2 = lc[3 * t + 2]
        z_u0 = NEG
        z_u1 = NEG
        z_c0 = NEG
        z_c0b = NEG
        z_c1 = NEG
        z_c1b = NEG
        for s in range(4):
            nbeta[s] = NEG
        for s in range(4):
            u1 = s >> 1
            u2 = s & 1
            for u in range(2):
                c0 = u ^ u2
                c1 = u ^ u1 ^ u2
                ns = 2 * u + u1
                g = -c0 * l0 - c1 * (l1 + l2)
                if beta[ns] > NEG:
                    nbeta[s] = _lse2(nbeta[s], g + beta[ns], max_log)
                a = alpha[t, s]
                if a <= NEG or beta[ns] <= NEG:
                    continue
                v = a + g + beta[ns]
                if u:
                    z_u1 = _lse2(z_u1, v, max_log)
                else:
                    z_u0 = _lse2(z_u0, v, max_log)
                if c0:
                    z_c0b = _lse2(z_c0b, v, max_log)
                else:
                    z_c0 = _lse2(z_c0, v, max_log)
                if c1:
                    z_c1b = _lse2(z_c1b, v, max_log)
                else:
                    z_c1 = _lse2(z_c1, v, max_log)
        app_u[t] = z_u0 - z_u1
        le_out[3 * t] = _clip(z_c0 - z_c0b - l0)
        d1 = z_c1 - z_c1b
        le_out[3 * t + 1] = _clip(d1 - l1)
        le_out[3 * t + 2] = _clip(d1 - l2)
        mx = max(max(nbeta[0], nbeta[1]), max(nbeta[2], nbeta[3]))
        for s in range(4):
            beta[s] = nbeta[s] - mx


@nb.njit(cache=True)
def channel_probabilities(metric, ginv, pg):
    """Channel term of the inner edges in the probability domain, in input-pattern order.

    ``pg[i, v] = exp(max(metric[i, ginv[v]] - max_s metric[i, s], -LLR_CLIP))``: the probability of the PPM symbol
    whose edge leaving state 0 carries the input pattern v (``ginv`` = inverse Gray map, since from
    state 0 the input bits are gray(s) = s ^ (s >> 1)). From state 1 the pattern of the same symbol
    has its MSB flipped, so the state-1 edges read ``pg[i, v ^ M/2]``. Computed once per codeword:
    the channel term does not change between iterations.
    """
    S, M = metric.shape
    for i in range(S):
        mx = metric[i, 0]
        for s in range(1, M):
            if metric[i, s] > mx:
                mx = metric[i, s]
        # photon counts are mostly 0 (metric 0): one exponential serves every empty slot.
        # A symbol's metric spread is capped at LLR_CLIP (the same bound as the exchanged ratios):
        # past it the trellis could meet a stage whose every reachable edge has probability 0.
        e_zero = np.exp(max(-mx, -LLR_CLIP))
        for v in range(M):
            x = metric[i, ginv[v]]
            pg[i, v] = e_zero if x == 0.0 else np.exp(max(x - mx, -LLR_CLIP))


@nb.njit(cache=True, fastmath=True)
def inner_siso_prob(pg, la, par, m, le_out, alpha, pv):
    """Exact log-MAP inner SISO (accumulator + PPM), computed in the probability domain.

    pg : (S, M) channel probabilities in input-pattern order (:func:`channel_probabilities`).
    la : (S*m,) a priori likelihood ratios lambda = P(v=1)/P(v=0) = exp(-LLR) of the accumulator
    input bits.  par : (M/2,) float64 parity (0/1) of the patterns 0..M/2-1.  le_out : (S*m,)
    extrinsic likelihood ratios out, clipped to exp(+-60).  alpha : (S+1, 2), pv : (S, M) scratch.
    Working with ratios removes every exponential and logarithm from the iterations.

    Edges, indexed by input pattern v (m bits, MSB first): from state 0, symbol s = ginv(v), next
    state s & 1 = parity(v); from state 1, symbol ginv(v ^ M/2), next state parity(v) ^ 1.
    The edge probability is channel term x a priori probability of v (products over the m bits,
    built by doubling). Forward and backward recursions are normalized every stage; the extrinsic
    LLR of each bit comes from a butterfly marginalization over v. Per stage: m exponentials,
    m logarithms and O(M m) multiply-adds; no data-dependent branches.
    """
    S, M = pg.shape
    h = M // 2
    alpha[0, 0] = 1.0
    alpha[0, 1] = 0.0
    for i in range(S):
        _pattern_probs(la, i * m, m, pv[i])
        e0 = 0.0
        o0 = 0.0
        e1 = 0.0
        o1 = 0.0
        for j in range(h):
            pj = pv[i, j]
            pk = pv[i, j + h]
            A = pg[i, j]
            B = pg[i, j + h]
            od = par[j]
            ev = 1.0 - od
            x0l = A * pj      # state 0, pattern j      (parity par[j])
            x0u = B * pk      # state 0, pattern j + h  (parity par[j] ^ 1)
            x1l = B * pj      # state 1, pattern j
            x1u = A * pk      # state 1, pattern j + h
            e0 += ev * x0l + od * x0u
            o0 += od * x0l + ev * x0u
            e1 += ev * x1l + od * x1u
            o1 += od * x1l + ev * x1u
        a0 = alpha[i, 0]
        a1 = alpha[i, 1]
        n0 = a0 * e0 + a1 * o1     # next state 0: parity 0 from state 0, parity 1 from state 1
        n1 = a0 * o0 + a1 * e1
        tot = n0 + n1
        alpha[i + 1, 0] = n0 / tot
        alpha[i + 1, 1] = n1 / tot
    b0 = 0.5
    b1 = 0.5
    wc = np.empty(M)
    for i in range(S - 1, -1, -1):
        a0 = alpha[i, 0]
        a1 = alpha[i, 1]
        nb0 = 0.0
        nb1 = 0.0
        for j in range(h):
            pj = pv[i, j]
            pk = pv[i, j + h]
            A = pg[i, j]
            B = pg[i, j + h]
            od = par[j]
            bl = b0 + (b1 - b0) * od          # beta of parity(j)
            bu = b1 + (b0 - b1) * od          # beta of parity(j) ^ 1
            g0l = A * pj * bl
            g0u = B * pk * bu
            g1l = B * pj * bu
            g1u = A * pk * bl
            nb0 += g0l + g0u
            nb1 += g1l + g1u
            wc[j] = a0 * g0l + a1 * g1l
            wc[j + h] = a0 * g0u + a1 * g1u
        # butterfly: at level t (from the LSB, bit index m-1-t in MSB-first order) the even/odd
        # entries of the partially summed array give P(bit = 0) and P(bit = 1)
        size = M
        for lvl in range(m):
            t = m - 1 - lvl
            z0 = 1e-300
            z1 = 1e-300
            half = size // 2
            for j in range(half):
                ev_ = wc[2 * j]
                od_ = wc[2 * j + 1]
                z0 += ev_
                z1 += od_
                wc[j] = ev_ + od_
            size = half
            le_out[i * m + t] = _clip_ratio(z1 / (z0 * la[i * m + t]))
        tot = nb0 + nb1
        b0 = nb0 / tot
        b1 = nb1 / tot


@nb.njit(cache=True, inline="always")
def _pattern_probs(la, off, m, pv):
    """pv[v] = prod_t P(v_t) for every m-bit pattern v (MSB = first bit), from the likelihood
    ratios la[off:off+m] (P(1)/P(0))."""
    pv[0] = 1.0
    size = 1
    for t in range(m):
        p0 = 1.0 / (1.0 + la[off + t])
        p1 = la[off + t] * p0
        for j in range(size - 1, -1, -1):
            q = pv[j]
            pv[2 * j] = q * p0
            pv[2 * j + 1] = q * p1
        size *= 2


@nb.njit(cache=True, fastmath=True)
def outer_siso_prob(lc, T, le_out, app_u, alpha, gam):
    """Exact log-MAP outer SISO in the probability domain; same contract as :func:`outer_siso`,
    except that ``lc`` and ``le_out`` are likelihood ratios P(1)/P(0) (1 = punctured / unknown),
    and ``app_u`` holds only the sign of the a posteriori LLR (+1 / -1), all the turbo loop needs
    for its hard decisions. ``gam`` is a (T, 4) scratch array.

    The 8 edges of the (5,7,7) trellis, state s = 2 u_{t-1} + u_{t-2}, written out (edge -> coded
    pair c0 c1, next state): s0: u0 -> 00, s0; u1 -> 11, s2 | s1: u0 -> 11, s0; u1 -> 00, s2 |
    s2: u0 -> 01, s1; u1 -> 10, s3 | s3: u0 -> 10, s1; u1 -> 01, s3. ``gam[t, 2 c0 + c1]``.
    """
    alpha[0, 0] = 1.0
    alpha[0, 1] = 0.0
    alpha[0, 2] = 0.0
    alpha[0, 3] = 0.0
    for t in range(T):
        _outer_gamma(lc, t, gam[t])
        g0 = gam[t, 0]
        g1 = gam[t, 1]
        g2 = gam[t, 2]
        g3 = gam[t, 3]
        a0 = alpha[t, 0]
        a1 = alpha[t, 1]
        a2 = alpha[t, 2]
        a3 = alpha[t, 3]
        na0 = a0 * g0 + a1 * g3
        na2 = a0 * g3 + a1 * g0
        na1 = a2 * g1 + a3 * g2
        na3 = a2 * g2 + a3 * g1
        inv = 1.0 / (na0 + na1 + na2 + na3)
        alpha[t + 1, 0] = na0 * inv
        alpha[t + 1, 1] = na1 * inv
        alpha[t + 1, 2] = na2 * inv
        alpha[t + 1, 3] = na3 * inv
    b0 = 1.0
    b1 = 0.0
    b2 = 0.0
    b3 = 0.0
    for t in range(T - 1, -1, -1):
        g0 = gam[t, 0]
        g1 = gam[t, 1]
        g2 = gam[t, 2]
        g3 = gam[t, 3]
        a0 = alpha[t, 0]
        a1 = alpha[t, 1]
        a2 = alpha[t, 2]
        a3 = alpha[t, 3]
        w00 = a0 * g0 * b0
        w01 = a0 * g3 * b2
        w10 = a1 * g3 * b0
        w11 = a1 * g0 * b2
        w20 = a2 * g1 * b1
        w21 = a2 * g2 * b3
        w30 = a3 * g2 * b1
        w31 = a3 * g1 * b3
        zu0 = w00 + w10 + w20 + w30
        zu1 = w01 + w11 + w21 + w31
        zc0 = w00 + w11 + w20 + w31 + 1e-300
        zc0b = w01 + w10 + w21 + w30 + 1e-300
        zc1 = w00 + w11 + w21 + w30 + 1e-300
        zc1b = w01 + w10 + w20 + w31 + 1e-300
        app_u[t] = 1.0 if zu0 >= zu1 else -1.0   # only the sign is used (hard decision)
        le_out[3 * t] = _clip_ratio(zc0b / (zc0 * lc[3 * t]))
        r1 = zc1b / zc1
        le_out[3 * t + 1] = _clip_ratio(r1 / lc[3 * t + 1])
        le_out[3 * t + 2] = _clip_ratio(r1 / lc[3 * t + 2])
        nb0 = g0 * b0 + g3 * b2
        nb1 = g3 * b0 + g0 * b2
        nb2 = g1 * b1 + g2 * b3
        nb3 = g2 * b1 + g1 * b3
        inv = 1.0 / (nb0 + nb1 + nb2 + nb3)
        b0 = nb0 * inv
        b1 = nb1 * inv
        b2 = nb2 * inv
        b3 = nb3 * inv


@nb.njit(cache=True, inline="always")
def _outer_gamma(lc, t, gam):
    """gam[2 c0 + c1] = P(c0) P(c1) P(c2 = c1) from the a priori likelihood ratios of stage t."""
    r0 = lc[3 * t]
    r12 = lc[3 * t + 1] * lc[3 * t + 2]
    p00 = 1.0 / (1.0 + r0)
    p01 = r0 * p00
    p10 = 1.0 / (1.0 + r12)
    p11 = r12 * p10
    gam[0] = p00 * p10
    gam[1] = p00 * p11
    gam[2] = p01 * p10
    gam[3] = p01 * p11


RATIO_MAX = float(np.exp(LLR_CLIP))
RATIO_MIN = float(np.exp(-LLR_CLIP))


@nb.njit(cache=True, inline="always")
def _clip_ratio(x):
    if x > RATIO_MAX:
        return RATIO_MAX
    if x < RATIO_MIN:
        return RATIO_MIN
    return x


@nb.njit(cache=True, inline="always")
def _crc_ok(bits, n_data, poly, init):
    """CRC-32 (MSB first, no reflection) over bits[:n_data] equals bits[n_data:n_data+32]."""
    reg = np.uint32(init)
    for i in range(n_data):
        fb = ((reg >> np.uint32(31)) & np.uint32(1)) ^ np.uint32(bits[i])
        reg = np.uint32(reg << np.uint32(1))
        if fb:
            reg ^= np.uint32(poly)
    for j in range(32):
        if ((reg >> np.uint32(31 - j)) & np.uint32(1)) != bits[n_data + j]:
            return False
    return True


@nb.njit(cache=True, parallel=True)
def turbo_decode(metric, edge_bits, ginv, par, m, inner_to_mother, T, k, max_iter, max_log, ext_scale,
                 poly, n_chunks, u_hat, crc_ok, iters):
    """Decode a batch: metric (F, S, M) float64 channel symbol log-likelihoods.

    edge_bits : (2, M) input patterns of the inner edges (max-log path); ginv : (M,) inverse Gray
        map; par : (M/2,) pattern parities (log-MAP path, see :func:`inner_siso_prob`).
    inner_to_mother : (15120,) int64, serial mother-code position of interleaved bit j
        (puncturing and the bit interleaver in one map).
    n_chunks : codewords are split in this many contiguous chunks, one ``prange`` lane each
        (scratch memory is allocated once per chunk).
    Writes u_hat (F, T) hard decisions on the outer input bits, crc_ok (F,), iters (F,).

    The log-MAP path exchanges likelihood ratios P(1)/P(0) (no exp/log inside the iterations);
    the max-log path exchanges LLRs scaled by ``ext_scale``.
    """
    F, S, M = metric.shape
    n = S * m
    for c in nb.prange(n_chunks):
        la_in = np.empty(n)
        le_in = np.empty(n)
        lc = np.empty(3 * T)
        le_c = np.empty(3 * T)
        app = np.empty(T)
        a_in = np.empty((S + 1, 2))
        a_out = np.empty((T + 1, 4))
        gam = np.empty((T, 4))
        bits = np.empty(T, dtype=np.uint8)
        pch = np.empty((S, M))
        pv = np.empty((S, M))
        neutral = 0.0 if max_log else 1.0      # "no information": LLR 0 or ratio 1
        for f in range(c * F // n_chunks, (c + 1) * F // n_chunks):
            la_in[:] = neutral
            lc[:] = neutral
            ok = False
            it = 0
            if not max_log:
                channel_probabilities(metric[f], ginv, pch)
            for it in range(1, max_iter + 1):
                if max_log:
                    inner_siso(metric[f], la_in, edge_bits, m, True, le_in, a_in)
                else:
                    inner_siso_prob(pch, la_in, par, m, le_in, a_in, pv)
                for j in range(n):
                    lc[inner_to_mother[j]] = le_in[j]
                if max_log:
                    outer_siso(lc, T, True, le_c, app, a_out)
                else:
                    outer_siso_prob(lc, T, le_c, app, a_out, gam)
                for t in range(T):
                    bits[t] = 1 if app[t] < 0 else 0
                ok = _crc_ok(bits, k, poly, 0xFFFFFFFF)
                if ok:
                    break
                if max_log:
                    for j in range(n):
                        la_in[j] = ext_scale * le_c[inner_to_mother[j]]
                else:
                    for j in range(n):
                        la_in[j] = le_c[inner_to_mother[j]]
            for t in range(T):
                u_hat[f, t] = bits[t]
            crc_ok[f] = ok
            iters[f] = it


# --- Stage-vectorised exact log-MAP decoder (the decoder's log-MAP path) ---------------------------
# The per-stage loops of inner_siso_prob / outer_siso_prob are latency bound: each stage ends in a
# division that the next stage waits for, and the sums over edges end in horizontal reductions.
# The functions below split each SISO as kernels/scppm_siso.cu does: (1) per-stage quantities
# that do not depend on the recursions (inner: the stage sums e0 o0 e1 o1; outer: the branch
# probabilities) for all stages at once, (2) the forward and backward recursions, interleaved in
# one loop (two independent dependency chains), (3) the extrinsic outputs of all stages at once.
# Stages are the innermost (contiguous) axis of every array, so (1) and (3) are SIMD loops over
# blocks of stages. No fastmath: each value is computed in the order written, which is the order
# of the CUDA kernel (sums over the edges in edge order, beta from the 2x2 stage sums) except for
# the inner extrinsic marginalisation, which keeps the CPU butterfly. error_model="numpy": Numba's
# default division-by-zero check is a branch that keeps LLVM from vectorising the loops (every
# divisor here is a sum of positive probabilities or 1 + a positive ratio).

STAGE_BLOCK = 4096   # the decoder works on blocks of B = min(S, max(256, STAGE_BLOCK // M)) stages


@nb.njit(cache=True)
def channel_probabilities_t(metric, ginv, pgt):
    """:func:`channel_probabilities` written transposed: pgt (M, S), pgt[v, i] = pg[i, v].

    Photon-count metrics are mostly 0 and take few distinct values per symbol: the row is filled
    with the zero value's probability, then the non-zero slots are visited, and a value equal to
    the previous one reuses its exponential (the same exp of the same argument: identical output).
    """
    S, M = metric.shape
    pat = np.empty(M, dtype=np.int64)       # input pattern of symbol s (the inverse of ginv)
    for v in range(M):
        pat[ginv[v]] = v
    nz = np.empty(M, dtype=np.int64)
    for i in range(S):
        row = metric[i]
        mx = row[0]
        cnt = 0
        for s in range(M):          # branch-free: the maximum and the list of non-zero slots
            x = row[s]
            mx = x if x > mx else mx
            nz[cnt] = s
            cnt += x != 0.0
        e_zero = np.exp(max(-mx, -LLR_CLIP))
        for v in range(M):
            pgt[v, i] = e_zero
        x_last = 0.0
        e_last = e_zero
        for c in range(cnt):
            s = nz[c]
            x = row[s]
            if x != x_last:
                x_last = x
                e_last = np.exp(max(x - mx, -LLR_CLIP))
            pgt[pat[s], i] = e_last

@nb.njit(cache=True, error_model="numpy")
def _pattern_probs_block(lat, i0, nb_, m, pa, pb, p0, p1):
    """Pattern probabilities of stages i0 .. i0+nb_-1 (see :func:`_pattern_probs`, same products
    in the same order): returns pa or pb, (M, B), holding [v, i - i0]; lat (m, S) likelihood ratios.
    (Loops index views from 0: an offset index would keep LLVM from vectorising them.)"""
    i1 = i0 + nb_
    r = pa[0]
    for b in range(nb_):
        r[b] = 1.0
    cur = pa
    nxt = pb
    size = 1
    for t in range(m):
        lt = lat[t, i0:i1]
        for b in range(nb_):
            p0[b] = 1.0 / (1.0 + lt[b])
        for b in range(nb_):
            p1[b] = lt[b] * p0[b]
        for j in range(size):
            q = cur[j]
            r = nxt[2 * j]
            for b in range(nb_):
                r[b] = q[b] * p0[b]
            r = nxt[2 * j + 1]
            for b in range(nb_):
                r[b] = q[b] * p1[b]
        cur, nxt = nxt, cur
        size *= 2
    return cur


@nb.njit(cache=True, error_model="numpy")
def inner_siso_stages(pgt, lat, par, m, let, alpha, betan, trans, tmp, wa, wb, v6):
    """Exact log-MAP inner SISO, stage-vectorised; the contract of :func:`inner_siso_prob` with
    transposed arrays: pgt (M, S) channel probabilities (input-pattern order); lat, let (m, S) a
    priori / extrinsic likelihood ratios P(1)/P(0), [t, i] = bit t (MSB first) of stage i.
    Scratch: alpha (2, S+1); betan (2, S) beta of stage i+1; trans (4, S) e0 o0 e1 o1;
    tmp, wa, wb (M, B); v6 (6, B); the stages are processed in blocks of B <= S.
    Steps: :func:`_inner_sums`, :func:`_inner_recursions`, :func:`_inner_ext`.
    """
    M, S = pgt.shape
    B = tmp.shape[1]
    pvs = np.empty(((S + B - 1) // B, M, B))
    _inner_sums(pgt, lat, par, m, trans, pvs, tmp, v6)
    _inner_recursions(trans, alpha, betan, trans, alpha, betan, False)
    _inner_ext(pgt, lat, par, m, let, alpha, betan, pvs, tmp, wa, wb, v6)


@nb.njit(cache=True, error_model="numpy")
def _inner_sums(pgt, lat, par, m, trans, pvs, tmp, v6):
    """Step (1) of :func:`inner_siso_stages`: trans[:, i] = e0 o0 e1 o1 of stage i. With
    pvs (ceil(S / B), M, B), the pattern probabilities of block b of B stages are kept in pvs[b]
    for step (3); with pvs (1, M, B), step (3) computes them again (for large M, where keeping
    them costs more memory traffic than the products). tmp (M, B) scratch."""
    M, S = pgt.shape
    h = M // 2
    B = pvs.shape[2]
    p0 = v6[0]
    p1 = v6[1]
    # (1) stage sums, edges in edge order
    for i0 in range(0, S, B):
        nb_ = min(B, S - i0)
        i1 = i0 + nb_
        dst = pvs[min(i0 // B, pvs.shape[0] - 1)]
        if m % 2 == 0:          # the doubling alternates buffers: make the last level land in dst
            pv = _pattern_probs_block(lat, i0, nb_, m, dst, tmp, p0, p1)
        else:
            pv = _pattern_probs_block(lat, i0, nb_, m, tmp, dst, p0, p1)
        e0 = trans[0, i0:i1]
        o0 = trans[1, i0:i1]
        e1 = trans[2, i0:i1]
        o1 = trans[3, i0:i1]
        for b in range(nb_):
            e0[b] = 0.0
            o0[b] = 0.0
            e1[b] = 0.0
            o1[b] = 0.0
        for j in range(h):
            jl = j if par[j] == 0.0 else j + h      # the even-parity pattern of the pair (j, j + h)
            ju = j + h if par[j] == 0.0 else j
            # from state 0, pattern v has symbol probability pgt[v]; from state 1, pgt[v ^ h]
            gl = pgt[jl, i0:i1]
            gu = pgt[ju, i0:i1]
            gl1 = pgt[jl ^ h, i0:i1]
            gu1 = pgt[ju ^ h, i0:i1]
            pl = pv[jl]
            pu = pv[ju]
            for b in range(nb_):
                e0[b] += gl[b] * pl[b]
                e1[b] += gl1[b] * pl[b]
            for b in range(nb_):
                o0[b] += gu[b] * pu[b]
                o1[b] += gu1[b] * pu[b]


@nb.njit(cache=True, error_model="numpy")
def _inner_recursions(trans, alpha, betan, trans2, alpha2, betan2, pair):
    """Step (2) of :func:`inner_siso_stages`; with ``pair``, the recursions of a second codeword
    (trans2 -> alpha2, betan2) run in the same loop: four independent dependency chains."""
    S = trans.shape[1]
    e0 = trans[0]
    o0 = trans[1]
    e1 = trans[2]
    o1 = trans[3]
    a0 = 1.0
    a1 = 0.0
    alpha[0, 0] = a0
    alpha[1, 0] = a1
    b0 = 0.5
    b1 = 0.5
    f0 = trans2[0]
    q0 = trans2[1]
    f1 = trans2[2]
    q1 = trans2[3]
    c0 = 1.0
    c1 = 0.0
    alpha2[0, 0] = c0
    alpha2[1, 0] = c1
    d0 = 0.5
    d1 = 0.5
    for s in range(S):
        r = S - 1 - s
        n0 = a0 * e0[s] + a1 * o1[s]
        n1 = a0 * o0[s] + a1 * e1[s]
        tot = n0 + n1
        a0 = n0 / tot
        a1 = n1 / tot
        alpha[0, s + 1] = a0
        alpha[1, s + 1] = a1
        betan[0, r] = b0
        betan[1, r] = b1
        nb0 = b0 * e0[r] + b1 * o0[r]
        nb1 = b0 * o1[r] + b1 * e1[r]
        tot = nb0 + nb1
        b0 = nb0 / tot
        b1 = nb1 / tot
        if pair:
            n0 = c0 * f0[s] + c1 * q1[s]
            n1 = c0 * q0[s] + c1 * f1[s]
            tot = n0 + n1
            c0 = n0 / tot
            c1 = n1 / tot
            alpha2[0, s + 1] = c0
            alpha2[1, s + 1] = c1
            betan2[0, r] = d0
            betan2[1, r] = d1
            nb0 = d0 * f0[r] + d1 * q0[r]
            nb1 = d0 * q1[r] + d1 * f1[r]
            tot = nb0 + nb1
            d0 = nb0 / tot
            d1 = nb1 / tot


@nb.njit(cache=True, error_model="numpy")
def _inner_ext(pgt, lat, par, m, let, alpha, betan, pvs, tmp, wa, wb, v6):
    """Step (3) of :func:`inner_siso_stages`: the extrinsic ratios let from alpha and betan
    (pvs: the pattern probabilities kept by step (1), or one block of scratch, see there)."""
    M, S = pgt.shape
    h = M // 2
    B = pvs.shape[2]
    p0 = v6[0]
    p1 = v6[1]
    z0 = v6[2]
    z1 = v6[3]
    # (3) extrinsic ratios: all paths through each input pattern, then the butterfly
    for i0 in range(0, S, B):
        nb_ = min(B, S - i0)
        i1 = i0 + nb_
        if pvs.shape[0] * B >= S:
            pv = pvs[i0 // B]
        else:
            pv = _pattern_probs_block(lat, i0, nb_, m, pvs[0], tmp, p0, p1)
        al0 = alpha[0, i0:i1]
        al1 = alpha[1, i0:i1]
        for j in range(h):
            # next state of pattern j from state 0 is par[j], of j + h par[j] ^ 1; from state 1
            # the symbol probabilities swap (pgt[v ^ h])
            bl = betan[0, i0:i1] if par[j] == 0.0 else betan[1, i0:i1]
            bu = betan[1, i0:i1] if par[j] == 0.0 else betan[0, i0:i1]
            A = pgt[j, i0:i1]
            Bp = pgt[j + h, i0:i1]
            pj = pv[j]
            pk = pv[j + h]
            w = wa[j]
            for b in range(nb_):
                w[b] = al0[b] * (A[b] * pj[b] * bl[b]) + al1[b] * (Bp[b] * pj[b] * bu[b])
            w = wa[j + h]
            for b in range(nb_):
                w[b] = al0[b] * (Bp[b] * pk[b] * bu[b]) + al1[b] * (A[b] * pk[b] * bl[b])
        cur = wa
        nxt = wb
        size = M
        for lvl in range(m):
            t = m - 1 - lvl
            half = size // 2
            for b in range(nb_):
                z0[b] = 1e-300
            for b in range(nb_):
                z1[b] = 1e-300
            for j in range(half):
                ce = cur[2 * j]
                co = cur[2 * j + 1]
                r = nxt[j]
                for b in range(nb_):
                    z0[b] += ce[b]
                    r[b] = ce[b] + co[b]
                for b in range(nb_):
                    z1[b] += co[b]
            lt = lat[t, i0:i1]
            lo = let[t, i0:i1]
            for b in range(nb_):
                lo[b] = _clip_ratio(z1[b] / (z0[b] * lt[b]))
            cur, nxt = nxt, cur
            size = half


@nb.njit(cache=True, error_model="numpy")
def outer_siso_stages(lc, le_out, bits, alpha, beta, gam):
    """Exact log-MAP outer SISO, stage-vectorised: :func:`outer_siso_prob` with the forward and
    backward recursions interleaved and the outputs computed afterwards for all stages, on
    transposed arrays. lc, le_out (3, T) likelihood ratios, [r, t] = mother-code bit 3 t + r;
    bits (T,) uint8 hard decisions (1 where the a posteriori LLR is negative).
    Scratch: alpha (4, T+1), beta (4, T) (beta of stage t+1), gam (4, T) (gam[2 c0 + c1, t])."""
    _outer_branch_probs(lc, gam)
    _outer_recursions(gam, alpha, beta, gam, alpha, beta, False)
    _outer_outputs(lc, le_out, bits, alpha, beta, gam)


@nb.njit(cache=True, error_model="numpy")
def _outer_branch_probs(lc, gam):
    """Step (1) of :func:`outer_siso_stages`."""
    T = lc.shape[1]
    l0 = lc[0]
    l1 = lc[1]
    l2 = lc[2]
    g0_ = gam[0]
    g1_ = gam[1]
    g2_ = gam[2]
    g3_ = gam[3]
    # (1) branch probabilities (four loops: each writes one array)
    for t in range(T):
        g0_[t] = (1.0 / (1.0 + l0[t])) * (1.0 / (1.0 + l1[t] * l2[t]))
    for t in range(T):
        r12 = l1[t] * l2[t]
        p10 = 1.0 / (1.0 + r12)
        g1_[t] = (1.0 / (1.0 + l0[t])) * (r12 * p10)
    for t in range(T):
        p00 = 1.0 / (1.0 + l0[t])
        g2_[t] = (l0[t] * p00) * (1.0 / (1.0 + l1[t] * l2[t]))
    for t in range(T):
        p00 = 1.0 / (1.0 + l0[t])
        r12 = l1[t] * l2[t]
        p10 = 1.0 / (1.0 + r12)
        g3_[t] = (l0[t] * p00) * (r12 * p10)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _outer_step(g0_, g1_, g2_, g3_, alpha, beta, s, r, a0, a1, a2, a3, b0, b1, b2, b3):
    """One step of the interleaved recursions: alpha of stage s+1 and, stored first, beta of
    stage r+1 (the running b values), then beta of stage r; returns the new running values."""
    g0 = g0_[s]
    g1 = g1_[s]
    g2 = g2_[s]
    g3 = g3_[s]
    na0 = a0 * g0 + a1 * g3
    na2 = a0 * g3 + a1 * g0
    na1 = a2 * g1 + a3 * g2
    na3 = a2 * g2 + a3 * g1
    inv = 1.0 / (na0 + na1 + na2 + na3)
    a0 = na0 * inv
    a1 = na1 * inv
    a2 = na2 * inv
    a3 = na3 * inv
    alpha[0, s + 1] = a0
    alpha[1, s + 1] = a1
    alpha[2, s + 1] = a2
    alpha[3, s + 1] = a3
    beta[0, r] = b0
    beta[1, r] = b1
    beta[2, r] = b2
    beta[3, r] = b3
    g0 = g0_[r]
    g1 = g1_[r]
    g2 = g2_[r]
    g3 = g3_[r]
    nb0 = g0 * b0 + g3 * b2
    nb1 = g3 * b0 + g0 * b2
    nb2 = g1 * b1 + g2 * b3
    nb3 = g2 * b1 + g1 * b3
    inv = 1.0 / (nb0 + nb1 + nb2 + nb3)
    return a0, a1, a2, a3, nb0 * inv, nb1 * inv, nb2 * inv, nb3 * inv


@nb.njit(cache=True, error_model="numpy")
def _outer_recursions(gam, alpha, beta, gam2, alpha2, beta2, pair):
    """Step (2) of :func:`outer_siso_stages`; with ``pair``, those of a second codeword in the
    same loop (four independent dependency chains)."""
    T = gam.shape[1]
    g0_ = gam[0]
    g1_ = gam[1]
    g2_ = gam[2]
    g3_ = gam[3]
    h0_ = gam2[0]
    h1_ = gam2[1]
    h2_ = gam2[2]
    h3_ = gam2[3]
    for q in range(4):
        alpha[q, 0] = 0.0
        alpha2[q, 0] = 0.0
    alpha[0, 0] = 1.0
    alpha2[0, 0] = 1.0
    a0, a1, a2, a3 = 1.0, 0.0, 0.0, 0.0
    b0, b1, b2, b3 = 1.0, 0.0, 0.0, 0.0
    c0, c1, c2, c3 = 1.0, 0.0, 0.0, 0.0
    d0, d1, d2, d3 = 1.0, 0.0, 0.0, 0.0
    for s in range(T):
        r = T - 1 - s
        a0, a1, a2, a3, b0, b1, b2, b3 = _outer_step(g0_, g1_, g2_, g3_, alpha, beta, s, r,
                                                     a0, a1, a2, a3, b0, b1, b2, b3)
        if pair:
            c0, c1, c2, c3, d0, d1, d2, d3 = _outer_step(h0_, h1_, h2_, h3_, alpha2, beta2, s, r,
                                                         c0, c1, c2, c3, d0, d1, d2, d3)


@nb.njit(cache=True, error_model="numpy")
def _outer_outputs(lc, le_out, bits, alpha, beta, gam):
    """Step (3) of :func:`outer_siso_stages`."""
    T = lc.shape[1]
    l0 = lc[0]
    l1 = lc[1]
    l2 = lc[2]
    g0_ = gam[0]
    g1_ = gam[1]
    g2_ = gam[2]
    g3_ = gam[3]
    # (3) hard decisions, then extrinsic ratios (each loop writes one array)
    c0_ = alpha[0]
    c1_ = alpha[1]
    c2_ = alpha[2]
    c3_ = alpha[3]
    d0_ = beta[0]
    d1_ = beta[1]
    d2_ = beta[2]
    d3_ = beta[3]
    for t in range(T):
        w00 = c0_[t] * g0_[t] * d0_[t]
        w01 = c0_[t] * g3_[t] * d2_[t]
        w10 = c1_[t] * g3_[t] * d0_[t]
        w11 = c1_[t] * g0_[t] * d2_[t]
        w20 = c2_[t] * g1_[t] * d1_[t]
        w21 = c2_[t] * g2_[t] * d3_[t]
        w30 = c3_[t] * g2_[t] * d1_[t]
        w31 = c3_[t] * g1_[t] * d3_[t]
        zu0 = w00 + w10 + w20 + w30
        zu1 = w01 + w11 + w21 + w31
        bits[t] = 0 if zu0 >= zu1 else 1
    e0_ = le_out[0]
    e1_ = le_out[1]
    e2_ = le_out[2]
    for t in range(T):
        w00 = c0_[t] * g0_[t] * d0_[t]
        w01 = c0_[t] * g3_[t] * d2_[t]
        w10 = c1_[t] * g3_[t] * d0_[t]
        w11 = c1_[t] * g0_[t] * d2_[t]
        w20 = c2_[t] * g1_[t] * d1_[t]
        w21 = c2_[t] * g2_[t] * d3_[t]
        w30 = c3_[t] * g2_[t] * d1_[t]
        w31 = c3_[t] * g1_[t] * d3_[t]
        zc0 = w00 + w11 + w20 + w31 + 1e-300
        zc0b = w01 + w10 + w21 + w30 + 1e-300
        e0_[t] = _clip_ratio(zc0b / (zc0 * l0[t]))
    for t in range(T):
        w00 = c0_[t] * g0_[t] * d0_[t]
        w01 = c0_[t] * g3_[t] * d2_[t]
        w10 = c1_[t] * g3_[t] * d0_[t]
        w11 = c1_[t] * g0_[t] * d2_[t]
        w20 = c2_[t] * g1_[t] * d1_[t]
        w21 = c2_[t] * g2_[t] * d3_[t]
        w30 = c3_[t] * g2_[t] * d1_[t]
        w31 = c3_[t] * g1_[t] * d3_[t]
        zc1 = w00 + w11 + w21 + w30 + 1e-300
        zc1b = w01 + w10 + w20 + w31 + 1e-300
        e1_[t] = _clip_ratio((zc1b / zc1) / l1[t])
    for t in range(T):
        w00 = c0_[t] * g0_[t] * d0_[t]
        w01 = c0_[t] * g3_[t] * d2_[t]
        w10 = c1_[t] * g3_[t] * d0_[t]
        w11 = c1_[t] * g0_[t] * d2_[t]
        w20 = c2_[t] * g1_[t] * d1_[t]
        w21 = c2_[t] * g2_[t] * d3_[t]
        w30 = c3_[t] * g2_[t] * d1_[t]
        w31 = c3_[t] * g1_[t] * d3_[t]
        zc1 = w00 + w11 + w21 + w30 + 1e-300
        zc1b = w01 + w10 + w20 + w31 + 1e-300
        e2_[t] = _clip_ratio((zc1b / zc1) / l2[t])


@nb.njit(cache=True, inline="always")
def _crc_ok_bytes(bits, n_data, tab, poly, init):
    """:func:`_crc_ok` computed a byte (8 bits, MSB first) at a time through ``tab``
    (uint32, :func:`modem.framing.crc.crc_table`); the remaining n_data % 8 bits one at a time.
    Same result."""
    reg = np.uint32(init)
    n8 = n_data // 8
    for q in range(n8):
        byte = np.uint32(0)
        for j in range(8):
            byte = (byte << np.uint32(1)) | np.uint32(bits[8 * q + j])
        reg = np.uint32(reg << np.uint32(8)) ^ tab[((reg >> np.uint32(24)) ^ byte) & np.uint32(0xFF)]
    for i in range(8 * n8, n_data):
        fb = ((reg >> np.uint32(31)) & np.uint32(1)) ^ np.uint32(bits[i])
        reg = np.uint32(reg << np.uint32(1))
        if fb:
            reg ^= np.uint32(poly)
    for j in range(32):
        if ((reg >> np.uint32(31 - j)) & np.uint32(1)) != bits[n_data + j]:
            return False
    return True


@nb.njit(cache=True, parallel=True, error_model="numpy")
def turbo_decode_stages(metric, ginv, par, m, itm, T, k, max_iter, poly, crc_tab, n_chunks, u_hat, crc_ok, iters):
    """Exact log-MAP batch decode with the stage-vectorised SISOs (the decoder's log-MAP path):
    the contract of :func:`turbo_decode` with ``max_log=False``, except for the interleaver map:

    itm : (S*m,) int64, position of interleaved bit j in the flattened transposed (3, T) arrays of
        :func:`outer_siso_stages`: (p % 3) T + p // 3 for the mother-code position
        p = inner_to_mother[j].
    crc_tab : (256,) uint32 byte table of the CRC-32 ``poly`` (:func:`modem.framing.crc.crc_table`).

    For M <= 32 each ``prange`` chunk decodes its codewords two at a time (slots 0 and 1),
    iteration by iteration in step, so that the recursions of the two run in one loop (their
    dependency chains overlap); a slot whose codeword stops (CRC or max_iter) takes the chunk's
    next codeword. For larger M, one at a time (measured faster: smaller working set).
    Per codeword the arithmetic is that of :func:`inner_siso_stages` / :func:`outer_siso_stages`.
    """
    F, S, M = metric.shape
    B = min(S, max(256, STAGE_BLOCK // M))
    for c in nb.prange(n_chunks):
        lo = c * F // n_chunks
        hi = (c + 1) * F // n_chunks
        pgt = np.empty((2, M, S))
        lat = np.empty((2, m, S))
        let = np.empty((2, m, S))
        lc = np.empty((2, 3, T))
        le_c = np.empty((2, 3, T))
        a_in = np.empty((2, 2, S + 1))
        b_in = np.empty((2, 2, S))
        trans = np.empty((2, 4, S))
        a_out = np.empty((2, 4, T + 1))
        b_out = np.empty((2, 4, T))
        gam = np.empty((2, 4, T))
        bits = np.empty((2, T), dtype=np.uint8)
        # pattern probabilities kept between steps (1) and (3) for M <= 32 (see _inner_sums)
        pvs = np.empty((2, (S + B - 1) // B if M <= 32 else 1, M, B))
        pa = np.empty((M, B))
        wa = np.empty((M, B))
        wb = np.empty((M, B))
        v6 = np.empty((6, B))
        cw = np.full(2, -1, dtype=np.int64)     # codeword in each slot, -1: none
        it = np.zeros(2, dtype=np.int64)
        nxt = lo
        # two codewords in step for M <= 32; for larger M the second one's arrays would push the
        # first one's channel probabilities out of the cache between steps (1) and (3)
        for q in range(2 if M <= 32 else 1):
            if nxt < hi:
                cw[q] = nxt
                it[q] = 0
                lat[q, :, :] = 1.0       # no information: likelihood ratio 1
                lc[q, :, :] = 1.0        # (punctured positions keep it)
                channel_probabilities_t(metric[nxt], ginv, pgt[q])
                nxt += 1
        while cw[0] >= 0 or cw[1] >= 0:
            both = cw[0] >= 0 and cw[1] >= 0
            q1 = 0 if cw[0] >= 0 else 1          # the (first) busy slot
            for q in range(2):
                if cw[q] >= 0:
                    _inner_sums(pgt[q], lat[q], par, m, trans[q], pvs[q], pa, v6)
            if both:
                _inner_recursions(trans[0], a_in[0], b_in[0], trans[1], a_in[1], b_in[1], True)
            else:
                _inner_recursions(trans[q1], a_in[q1], b_in[q1], trans[q1], a_in[q1], b_in[q1], False)
            for q in range(2):
                if cw[q] >= 0:
                    _inner_ext(pgt[q], lat[q], par, m, let[q], a_in[q], b_in[q], pvs[q], pa, wa, wb, v6)
                    lcf = lc[q].reshape(3 * T)
                    lq = let[q]
                    for i in range(S):
                        for t in range(m):
                            lcf[itm[i * m + t]] = lq[t, i]
                    _outer_branch_probs(lc[q], gam[q])
            if both:
                _outer_recursions(gam[0], a_out[0], b_out[0], gam[1], a_out[1], b_out[1], True)
            else:
                _outer_recursions(gam[q1], a_out[q1], b_out[q1], gam[q1], a_out[q1], b_out[q1], False)
            for q in range(2):
                if cw[q] < 0:
                    continue
                _outer_outputs(lc[q], le_c[q], bits[q], a_out[q], b_out[q], gam[q])
                ok = _crc_ok_bytes(bits[q], k, crc_tab, poly, 0xFFFFFFFF)
                it[q] += 1
                if ok or it[q] >= max_iter:
                    f = cw[q]
                    for t in range(T):
                        u_hat[f, t] = bits[q, t]
                    crc_ok[f] = ok
                    iters[f] = it[q]
                    if nxt < hi:
                        cw[q] = nxt
                        it[q] = 0
                        lat[q, :, :] = 1.0
                        lc[q, :, :] = 1.0
                        channel_probabilities_t(metric[nxt], ginv, pgt[q])
                        nxt += 1
                    else:
                        cw[q] = -1
                else:
                    lecf = le_c[q].reshape(3 * T)
                    lq = lat[q]
                    for i in range(S):
                        for t in range(m):
                            lq[t, i] = lecf[itm[i * m + t]]
