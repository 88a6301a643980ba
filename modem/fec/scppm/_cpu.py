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


@nb.njit(cache=True)
def inner_siso(metric, la, edge_bits, m, max_log, le_out, alpha):
    """Accumulator+PPM SISO for one codeword.

    metric : (S, M) float64 channel symbol log-likelihoods (pulse in slot s), any common offset.
    la : (S*m,) a priori LLRs of the accumulator input bits v (interleaved domain).
    edge_bits : (2, M) int64, the m input bits (MSB = first) on the edge leaving state sigma with
        PPM symbol s; the next state is s & 1.
    le_out : (S*m,) written with extrinsic LLRs of v.   alpha : (S+1, 2) scratch.
    """
    S, M = metric.shape
    # A priori edge terms are recomputed in each pass (cheap next to the channel term).
    alpha[0, 0] = 0.0
    alpha[0, 1] = NEG
    g = np.empty((2, M))
    for i in range(S):
        for sg in range(2):
            for s in range(M):
                a = metric[i, s]
                b = edge_bits[sg, s]
                for t in range(m):
                    if (b >> (m - 1 - t)) & 1:
                        a -= la[i * m + t]
                g[sg, s] = a
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
        for sg in range(2):
            for s in range(M):
                a = metric[i, s]
                bb = edge_bits[sg, s]
                for t in range(m):
                    if (bb >> (m - 1 - t)) & 1:
                        a -= la[i * m + t]
                g[sg, s] = a
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
def channel_probabilities(metric, pch):
    """pch[i, s] = exp(metric[i, s] - max_s metric[i, :]): the channel term of the inner edges in the
    probability domain, computed once per codeword (it does not change between iterations)."""
    S, M = metric.shape
    for i in range(S):
        mx = metric[i, 0]
        for s in range(1, M):
            if metric[i, s] > mx:
                mx = metric[i, s]
        for s in range(M):
            pch[i, s] = np.exp(metric[i, s] - mx)


@nb.njit(cache=True)
def inner_siso_prob(pch, la, edge_bits, m, le_out, alpha, pv):
    """Exact log-MAP inner SISO computed in the probability domain (normalized every stage).

    Same contract as :func:`inner_siso`, with ``pch`` from :func:`channel_probabilities` and ``pv``
    an (S, M) scratch array. Per stage only m exponentials (a priori bit probabilities) and m
    logarithms (extrinsic LLRs) are needed: the a priori probability of every m-bit input pattern
    is built by doubling (M products), and the per-bit sums over the 2M edges are marginalized
    with a butterfly over the input pattern (about 3M additions).
    """
    S, M = pch.shape
    alpha[0, 0] = 1.0
    alpha[0, 1] = 0.0
    for i in range(S):
        _pattern_probs(la, i * m, m, pv[i])
        n0 = 0.0
        n1 = 0.0
        for sg in range(2):
            a0 = alpha[i, sg]
            if a0 == 0.0:
                continue
            for s in range(M):
                v = a0 * pch[i, s] * pv[i, edge_bits[sg, s]]
                if s & 1:
                    n1 += v
                else:
                    n0 += v
        tot = n0 + n1
        alpha[i + 1, 0] = n0 / tot
        alpha[i + 1, 1] = n1 / tot
    b0 = 0.5
    b1 = 0.5
    wc = np.empty(M)
    for i in range(S - 1, -1, -1):
        for v in range(M):
            wc[v] = 0.0
        nb0 = 0.0
        nb1 = 0.0
        for sg in range(2):
            a0 = alpha[i, sg]
            acc = 0.0
            for s in range(M):
                eb = edge_bits[sg, s]
                g = pch[i, s] * pv[i, eb] * (b1 if s & 1 else b0)
                acc += g
                wc[eb] += a0 * g
            if sg == 0:
                nb0 = acc
            else:
                nb1 = acc
        # butterfly: at level t (from the LSB, bit index m-1-t in MSB-first order) the even/odd
        # entries of the partially summed array give P(bit = 0) and P(bit = 1)
        size = M
        for lvl in range(m):
            t = m - 1 - lvl
            z0 = 1e-300
            z1 = 1e-300
            half = size // 2
            for j in range(half):
                e = wc[2 * j]
                o = wc[2 * j + 1]
                z0 += e
                z1 += o
                wc[j] = e + o
            size = half
            le_out[i * m + t] = _clip(np.log(z0 / z1) - la[i * m + t])
        tot = nb0 + nb1
        b0 = nb0 / tot
        b1 = nb1 / tot


@nb.njit(cache=True, inline="always")
def _pattern_probs(la, off, m, pv):
    """pv[v] = prod_t P(v_t) for every m-bit pattern v (MSB = first bit), from LLRs la[off:off+m]."""
    pv[0] = 1.0
    size = 1
    for t in range(m):
        p1 = 1.0 / (1.0 + np.exp(la[off + t]))
        p0 = 1.0 - p1
        for j in range(size - 1, -1, -1):
            q = pv[j]
            pv[2 * j] = q * p0
            pv[2 * j + 1] = q * p1
        size *= 2


@nb.njit(cache=True)
def outer_siso_prob(lc, T, le_out, app_u, alpha):
    """Exact log-MAP outer SISO in the probability domain; same contract as :func:`outer_siso`,
    except that ``app_u`` holds only the sign of the a posteriori LLR (+1 / -1), all the turbo loop
    needs for its hard decisions."""
    for s in range(4):
        alpha[0, s] = 0.0
    alpha[0, 0] = 1.0
    gam = np.empty(4)   # index 2*c0 + c1
    for t in range(T):
        _outer_gamma(lc, t, gam)
        na0 = 0.0
        na1 = 0.0
        na2 = 0.0
        na3 = 0.0
        for s in range(4):
            a = alpha[t, s]
            if a == 0.0:
                continue
            u1 = s >> 1
            u2 = s & 1
            # u = 0 -> next state u1, u = 1 -> next state 2 + u1
            g0 = gam[2 * u2 + (u1 ^ u2)]
            g1 = gam[2 * (1 ^ u2) + (1 ^ u1 ^ u2)]
            if u1:
                na1 += a * g0
                na3 += a * g1
            else:
                na0 += a * g0
                na2 += a * g1
        tot = na0 + na1 + na2 + na3
        alpha[t + 1, 0] = na0 / tot
        alpha[t + 1, 1] = na1 / tot
        alpha[t + 1, 2] = na2 / tot
        alpha[t + 1, 3] = na3 / tot
    beta = np.zeros(4)
    beta[0] = 1.0
    nbeta = np.empty(4)
    for t in range(T - 1, -1, -1):
        _outer_gamma(lc, t, gam)
        zu0 = 1e-300
        zu1 = 1e-300
        zc0 = 1e-300
        zc0b = 1e-300
        zc1 = 1e-300
        zc1b = 1e-300
        for s in range(4):
            u1 = s >> 1
            u2 = s & 1
            acc = 0.0
            for u in range(2):
                c0 = u ^ u2
                c1 = u ^ u1 ^ u2
                g = gam[2 * c0 + c1] * beta[2 * u + u1]
                acc += g
                w = alpha[t, s] * g
                if u:
                    zu1 += w
                else:
                    zu0 += w
                if c0:
                    zc0b += w
                else:
                    zc0 += w
                if c1:
                    zc1b += w
                else:
                    zc1 += w
            nbeta[s] = acc
        app_u[t] = 1.0 if zu0 >= zu1 else -1.0   # only the sign is used (hard decision)
        le_out[3 * t] = _clip(np.log(zc0 / zc0b) - lc[3 * t])
        d1 = np.log(zc1 / zc1b)
        le_out[3 * t + 1] = _clip(d1 - lc[3 * t + 1])
        le_out[3 * t + 2] = _clip(d1 - lc[3 * t + 2])
        tot = nbeta[0] + nbeta[1] + nbeta[2] + nbeta[3]
        for s in range(4):
            beta[s] = nbeta[s] / tot


@nb.njit(cache=True, inline="always")
def _outer_gamma(lc, t, gam):
    """gam[2 c0 + c1] = P(c0) P(c1) P(c2 = c1) from the a priori LLRs of stage t (normalized)."""
    l0 = lc[3 * t]
    l12 = lc[3 * t + 1] + lc[3 * t + 2]
    # P(b) proportional to exp(-b L) for LLR L (positive = bit 0)
    e0 = np.exp(-abs(l0))
    e12 = np.exp(-abs(l12))
    p0_0, p0_1 = (1.0, e0) if l0 >= 0 else (e0, 1.0)
    p1_0, p1_1 = (1.0, e12) if l12 >= 0 else (e12, 1.0)
    gam[0] = p0_0 * p1_0
    gam[1] = p0_0 * p1_1
    gam[2] = p0_1 * p1_0
    gam[3] = p0_1 * p1_1


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
def turbo_decode(metric, edge_bits, m, inner_to_mother, T, k, max_iter, max_log, ext_scale,
                 poly, u_hat, crc_ok, iters):
    """Decode a batch: metric (F, S, M) float64 channel symbol log-likelihoods.

    inner_to_mother : (15120,) int64, serial mother-code position of interleaved bit j
        (puncturing and the bit interleaver in one map).
    Writes u_hat (F, T) hard decisions on the outer input bits, crc_ok (F,), iters (F,).
    """
    F, S, M = metric.shape
    n = S * m
    for f in nb.prange(F):
        la_in = np.zeros(n)
        le_in = np.empty(n)
        lc = np.zeros(3 * T)
        le_c = np.empty(3 * T)
        app = np.empty(T)
        a_in = np.empty((S + 1, 2))
        a_out = np.empty((T + 1, 4))
        bits = np.empty(T, dtype=np.uint8)
        ok = False
        it = 0
        pch = np.empty((S, M))
        pv = np.empty((S, M))
        if not max_log:
            channel_probabilities(metric[f], pch)
        for it in range(1, max_iter + 1):
            if max_log:
                inner_siso(metric[f], la_in, edge_bits, m, True, le_in, a_in)
            else:
                inner_siso_prob(pch, la_in, edge_bits, m, le_in, a_in, pv)
            for j in range(n):
                lc[inner_to_mother[j]] = le_in[j]
            if max_log:
                outer_siso(lc, T, True, le_c, app, a_out)
            else:
                outer_siso_prob(lc, T, le_c, app, a_out)
            for t in range(T):
                bits[t] = 1 if app[t] < 0 else 0
            ok = _crc_ok(bits, k, poly, 0xFFFFFFFF)
            if ok:
                break
            for j in range(n):
                la_in[j] = ext_scale * le_c[inner_to_mother[j]]
        for t in range(T):
            u_hat[f, t] = bits[t]
        crc_ok[f] = ok
        iters[f] = it
