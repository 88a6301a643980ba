// SPDX-License-Identifier: Apache-2.0
// scppm_siso.cu -- SCPPM iterative decoder (CCSDS 142.0-B-1), exact log-MAP in the probability
// domain, many codewords at once.
//
// Mirrors modem/fec/scppm/_cpu.py (turbo_decode_stages, the decoder's default exact log-MAP:
// channel_probabilities_t, inner_siso_stages, outer_siso_stages; the SISOs of turbo_decode with
// max_log=False): same trellises, same per-stage normalisation of the forward and backward
// recursions, same likelihood-ratio clipping (exp(+-60)), same CRC-32 early stop. Arithmetic is
// float64 as on the CPU, the same operations in the same order except the inner extrinsic sums
// (per-bit accumulation here, the CPU's butterfly there), so soft values agree to rounding and
// the CRC flags, iterations and decoded bits are expected to be identical
// (tests/test_gpu_equivalence.py; with GPU-like rounding tests/test_gpu_review2.py). Exception:
// a bit whose two sums tie exactly (its symbols carried no photon) is decided by the rounding;
// such a bit has lost its information, and its codeword failed its CRC on both in every case
// tried. Declared: TOLERANCE (soft), BIT-EXACT EXPECTED (flags, iterations, decoded bits).
//
// Decomposition (why it parallelises): the inner trellis has 2 states and M parallel edges per
// state and stage. Summing the edges of a stage by (from-state, parity of the input pattern)
// gives four numbers e0 o0 e1 o1 (see _cpu.inner_siso_prob):
//     alpha'0 = a0 e0 + a1 o1,  alpha'1 = a0 o0 + a1 e1      (forward)
//     beta0   = b0 e0 + b1 o0,  beta1   = b0 o1 + b1 e1      (backward, b = beta of stage i+1)
// so (1) scppm_inner_trans computes them for all (stage, codeword) in parallel, (2)
// scppm_inner_recursions runs the two 2x2 recursions, one thread per codeword, (3)
// scppm_inner_ext computes the extrinsic ratios of every stage in parallel and scatters them
// through the bit interleaver + puncturing map (inner_to_mother) into the outer a priori array.
// The outer (5,7,7) SISO (4 states, one stage per information bit) runs one thread per codeword
// and ends with the hard decisions and the CRC check of the codeword.
//
// Layouts (F codewords in the batch, batch index innermost so that neighbouring threads touch
// neighbouring addresses):
//   metric  (F, S, M) float64 input, C order (the decoder's input);
//   pg      (S, M, F) channel probabilities in input-pattern order;
//   trans   (S, 4, F) e0 o0 e1 o1;  alpha (S+1, 2, F);  betan (S, 2, F) = beta of stage i+1;
//   lc, le  (3T, F) likelihood ratios P(1)/P(0) of the mother-code bits (a priori / extrinsic
//           of the outer SISO), both initialised to 1 (no information);
//   alpha_o (T+1, 4, F) outer forward scratch;  bits (T, F) uint8;  done, iters (F,) int32;
//   itm     (S*m,) int32: mother-code position of interleaved bit j (bit_interleaver + puncture).
// Launch geometry: the (stage, codeword) kernels take one thread per pair, grid-stride; the
// per-codeword kernels one thread per codeword; any block size (256 suggested).
#include "common.cuh"

#define SCPPM_LLR_CLIP 60.0
#define SCPPM_RATIO_MAX 1.1420073898156842e26   // exp(60)
#define SCPPM_RATIO_MIN 8.7565107626965203e-27  // exp(-60)

MODEM_DEV double clip_ratio(double x) {
  return x > SCPPM_RATIO_MAX ? SCPPM_RATIO_MAX : (x < SCPPM_RATIO_MIN ? SCPPM_RATIO_MIN : x);
}

// Inverse Gray map: the PPM symbol s whose state-0 edge carries input pattern v (gray(s) = v).
template <int LOGM>
MODEM_DEV int inverse_gray(int v) {
  int s = v;
#pragma unroll
  for (int sh = 1; sh < LOGM; ++sh) s ^= v >> sh;
  return s;
}

// Probability of the m-bit input pattern v (MSB = first bit): product over the bits, in bit order
// (the CPU's doubling construction multiplies in the same order).
template <int LOGM>
MODEM_DEV double pattern_prob(const double* p0, const double* p1, int v) {
  double q = 1.0;
#pragma unroll
  for (int t = 0; t < LOGM; ++t) q *= ((v >> (LOGM - 1 - t)) & 1) ? p1[t] : p0[t];
  return q;
}

// A priori ratios of the m accumulator input bits of stage i, read through the interleaver from
// the outer extrinsic array le (3T, F); la[t] = P(1)/P(0), p0 = 1/(1+la), p1 = la p0.
template <int LOGM>
MODEM_DEV void stage_apriori(const double* __restrict__ le, const int* __restrict__ itm, i64 F, i64 f,
                             i64 i, double* la, double* p0, double* p1) {
#pragma unroll
  for (int t = 0; t < LOGM; ++t) {
    double r = le[(i64)itm[i * LOGM + t] * F + f];
    la[t] = r;
    p0[t] = 1.0 / (1.0 + r);
    p1[t] = r * p0[t];
  }
}

// pg[i, v, f] = exp(max(metric[f, i, ginv(v)] - max_s metric[f, i, s], -60)); one thread per (i, f).
template <int LOGM>
__global__ void scppm_channel_prob(const double* __restrict__ metric, double* __restrict__ pg, i64 F, i64 S) {
  const int M = 1 << LOGM;
  for (i64 g = global_tid(); g < F * S; g += global_stride()) {
    i64 f = g % F, i = g / F;
    const double* x = metric + (f * S + i) * M;
    double mx = x[0];
    for (int s = 1; s < M; ++s) mx = x[s] > mx ? x[s] : mx;
    // photon counts are mostly 0 (metric 0); the spread is capped at 60 as on the CPU
    double e_zero = exp(fmax(-mx, -SCPPM_LLR_CLIP));
    for (int v = 0; v < M; ++v) {
      double xv = x[inverse_gray<LOGM>(v)];
      pg[(i * M + v) * F + f] = xv == 0.0 ? e_zero : exp(fmax(xv - mx, -SCPPM_LLR_CLIP));
    }
  }
}

// trans[i, :, f] = (e0, o0, e1, o1) of stage i; one thread per (i, f), done codewords skipped.
template <int LOGM>
__global__ void scppm_inner_trans(const double* __restrict__ pg, const double* __restrict__ le,
                                  const int* __restrict__ itm, const int* __restrict__ done,
                                  double* __restrict__ trans, i64 F, i64 S) {
  const int M = 1 << LOGM, h = M / 2;
  for (i64 g = global_tid(); g < F * S; g += global_stride()) {
    i64 f = g % F, i = g / F;
    if (done[f]) continue;
    double la[LOGM], p0[LOGM], p1[LOGM];
    stage_apriori<LOGM>(le, itm, F, f, i, la, p0, p1);
    double e0 = 0.0, o0 = 0.0, e1 = 0.0, o1 = 0.0;
    for (int j = 0; j < h; ++j) {
      double pj = pattern_prob<LOGM>(p0, p1, j);
      double pk = pattern_prob<LOGM>(p0, p1, j + h);
      double A = pg[(i * M + j) * F + f];
      double B = pg[(i * M + j + h) * F + f];
      double x0l = A * pj, x0u = B * pk, x1l = B * pj, x1u = A * pk;
      if (parity32((u32)j)) {      // pattern j odd parity, j + h even
        o0 += x0l; e0 += x0u; o1 += x1l; e1 += x1u;
      } else {
        e0 += x0l; o0 += x0u; e1 += x1l; o1 += x1u;
      }
    }
    trans[(i * 4 + 0) * F + f] = e0;
    trans[(i * 4 + 1) * F + f] = o0;
    trans[(i * 4 + 2) * F + f] = e1;
    trans[(i * 4 + 3) * F + f] = o1;
  }
}

// Forward and backward recursions of the inner SISO, normalised every stage; one thread per codeword.
__global__ void scppm_inner_recursions(const double* __restrict__ trans, const int* __restrict__ done,
                                       double* __restrict__ alpha, double* __restrict__ betan, i64 F, i64 S) {
  for (i64 f = global_tid(); f < F; f += global_stride()) {
    if (done[f]) continue;
    double a0 = 1.0, a1 = 0.0;
    alpha[0 * F + f] = a0;
    alpha[1 * F + f] = a1;
    for (i64 i = 0; i < S; ++i) {
      double e0 = trans[(i * 4 + 0) * F + f], o0 = trans[(i * 4 + 1) * F + f];
      double e1 = trans[(i * 4 + 2) * F + f], o1 = trans[(i * 4 + 3) * F + f];
      double n0 = a0 * e0 + a1 * o1;
      double n1 = a0 * o0 + a1 * e1;
      double tot = n0 + n1;
      a0 = n0 / tot;
      a1 = n1 / tot;
      alpha[((i + 1) * 2 + 0) * F + f] = a0;
      alpha[((i + 1) * 2 + 1) * F + f] = a1;
    }
    double b0 = 0.5, b1 = 0.5;
    for (i64 i = S - 1; i >= 0; --i) {
      betan[(i * 2 + 0) * F + f] = b0;
      betan[(i * 2 + 1) * F + f] = b1;
      double e0 = trans[(i * 4 + 0) * F + f], o0 = trans[(i * 4 + 1) * F + f];
      double e1 = trans[(i * 4 + 2) * F + f], o1 = trans[(i * 4 + 3) * F + f];
      double nb0 = b0 * e0 + b1 * o0;
      double nb1 = b0 * o1 + b1 * e1;
      double tot = nb0 + nb1;
      b0 = nb0 / tot;
      b1 = nb1 / tot;
    }
  }
}

// Extrinsic ratios of the m bits of stage i, written to lc[itm[i m + t], f]; one thread per (i, f).
template <int LOGM>
__global__ void scppm_inner_ext(const double* __restrict__ pg, const double* __restrict__ le,
                                const int* __restrict__ itm, const double* __restrict__ alpha,
                                const double* __restrict__ betan, const int* __restrict__ done,
                                double* __restrict__ lc, i64 F, i64 S) {
  const int M = 1 << LOGM, h = M / 2;
  for (i64 g = global_tid(); g < F * S; g += global_stride()) {
    i64 f = g % F, i = g / F;
    if (done[f]) continue;
    double la[LOGM], p0[LOGM], p1[LOGM];
    stage_apriori<LOGM>(le, itm, F, f, i, la, p0, p1);
    double a0 = alpha[(i * 2 + 0) * F + f], a1 = alpha[(i * 2 + 1) * F + f];
    double b0 = betan[(i * 2 + 0) * F + f], b1 = betan[(i * 2 + 1) * F + f];
    double z0[LOGM], z1[LOGM];
#pragma unroll
    for (int t = 0; t < LOGM; ++t) { z0[t] = 1e-300; z1[t] = 1e-300; }
    for (int j = 0; j < h; ++j) {
      double pj = pattern_prob<LOGM>(p0, p1, j);
      double pk = pattern_prob<LOGM>(p0, p1, j + h);
      double A = pg[(i * M + j) * F + f];
      double B = pg[(i * M + j + h) * F + f];
      int od = parity32((u32)j);
      double bl = od ? b1 : b0;    // beta of the next state of pattern j from state 0
      double bu = od ? b0 : b1;    // ... of pattern j + h
      double g0l = A * pj * bl, g0u = B * pk * bu, g1l = B * pj * bu, g1u = A * pk * bl;
      double wl = a0 * g0l + a1 * g1l;   // all paths through input pattern j
      double wu = a0 * g0u + a1 * g1u;   // ... through pattern j + h
#pragma unroll
      for (int t = 0; t < LOGM; ++t) {
        int sh = LOGM - 1 - t;           // bit t (MSB first) of the pattern
        if ((j >> sh) & 1) z1[t] += wl; else z0[t] += wl;
        if (((j + h) >> sh) & 1) z1[t] += wu; else z0[t] += wu;
      }
    }
#pragma unroll
    for (int t = 0; t < LOGM; ++t)
      lc[(i64)itm[i * LOGM + t] * F + f] = clip_ratio(z1[t] / (z0[t] * la[t]));
  }
}

// Outer (5,7,7) SISO, terminated, probability domain, then hard decisions and the CRC-32 check;
// one thread per codeword. State s = 2 u_{t-1} + u_{t-2}; gam[2 c0 + c1] (see _cpu.outer_siso_prob).
// A codeword whose CRC checks is marked done with iters = it and is skipped from then on.
__global__ void scppm_outer_siso(const double* __restrict__ lc, double* __restrict__ le,
                                 double* __restrict__ alpha_o, unsigned char* __restrict__ bits,
                                 int* __restrict__ done, int* __restrict__ iters, i64 F, i64 T, i64 k,
                                 unsigned int poly, int it) {
  for (i64 f = global_tid(); f < F; f += global_stride()) {
    if (done[f]) continue;
    double a0 = 1.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    alpha_o[0 * F + f] = a0; alpha_o[1 * F + f] = a1; alpha_o[2 * F + f] = a2; alpha_o[3 * F + f] = a3;
    for (i64 t = 0; t < T; ++t) {
      double r0 = lc[(3 * t) * F + f];
      double r12 = lc[(3 * t + 1) * F + f] * lc[(3 * t + 2) * F + f];
      double p00 = 1.0 / (1.0 + r0), p01 = r0 * p00;
      double p10 = 1.0 / (1.0 + r12), p11 = r12 * p10;
      double g0 = p00 * p10, g1 = p00 * p11, g2 = p01 * p10, g3 = p01 * p11;
      double na0 = a0 * g0 + a1 * g3;
      double na2 = a0 * g3 + a1 * g0;
      double na1 = a2 * g1 + a3 * g2;
      double na3 = a2 * g2 + a3 * g1;
      double inv = 1.0 / (na0 + na1 + na2 + na3);
      a0 = na0 * inv; a1 = na1 * inv; a2 = na2 * inv; a3 = na3 * inv;
      alpha_o[((t + 1) * 4 + 0) * F + f] = a0;
      alpha_o[((t + 1) * 4 + 1) * F + f] = a1;
      alpha_o[((t + 1) * 4 + 2) * F + f] = a2;
      alpha_o[((t + 1) * 4 + 3) * F + f] = a3;
    }
    double b0 = 1.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
    for (i64 t = T - 1; t >= 0; --t) {
      double l0 = lc[(3 * t) * F + f], l1 = lc[(3 * t + 1) * F + f], l2 = lc[(3 * t + 2) * F + f];
      double r12 = l1 * l2;
      double p00 = 1.0 / (1.0 + l0), p01 = l0 * p00;
      double p10 = 1.0 / (1.0 + r12), p11 = r12 * p10;
      double g0 = p00 * p10, g1 = p00 * p11, g2 = p01 * p10, g3 = p01 * p11;
      double c0 = alpha_o[(t * 4 + 0) * F + f], c1 = alpha_o[(t * 4 + 1) * F + f];
      double c2 = alpha_o[(t * 4 + 2) * F + f], c3 = alpha_o[(t * 4 + 3) * F + f];
      double w00 = c0 * g0 * b0, w01 = c0 * g3 * b2, w10 = c1 * g3 * b0, w11 = c1 * g0 * b2;
      double w20 = c2 * g1 * b1, w21 = c2 * g2 * b3, w30 = c3 * g2 * b1, w31 = c3 * g1 * b3;
      double zu0 = w00 + w10 + w20 + w30;
      double zu1 = w01 + w11 + w21 + w31;
      double zc0 = w00 + w11 + w20 + w31 + 1e-300;
      double zc0b = w01 + w10 + w21 + w30 + 1e-300;
      double zc1 = w00 + w11 + w21 + w30 + 1e-300;
      double zc1b = w01 + w10 + w20 + w31 + 1e-300;
      bits[t * F + f] = zu0 >= zu1 ? 0 : 1;
      le[(3 * t) * F + f] = clip_ratio(zc0b / (zc0 * l0));
      double r1 = zc1b / zc1;
      le[(3 * t + 1) * F + f] = clip_ratio(r1 / l1);
      le[(3 * t + 2) * F + f] = clip_ratio(r1 / l2);
      double nb0 = g0 * b0 + g3 * b2;
      double nb1 = g3 * b0 + g0 * b2;
      double nb2 = g1 * b1 + g2 * b3;
      double nb3 = g2 * b1 + g1 * b3;
      double inv = 1.0 / (nb0 + nb1 + nb2 + nb3);
      b0 = nb0 * inv; b1 = nb1 * inv; b2 = nb2 * inv; b3 = nb3 * inv;
    }
    // CRC-32, MSB first, no reflection, init 0xFFFFFFFF, over bits[0:k]; compare with bits[k:k+32]
    u32 reg = 0xFFFFFFFFu;
    for (i64 t = 0; t < k; ++t) {
      u32 fb = ((reg >> 31) & 1u) ^ (u32)bits[t * F + f];
      reg <<= 1;
      if (fb) reg ^= poly;
    }
    int ok = 1;
    for (int j = 0; j < 32; ++j)
      if (((reg >> (31 - j)) & 1u) != (u32)bits[(k + j) * F + f]) { ok = 0; break; }
    if (ok) { done[f] = 1; iters[f] = it; }
  }
}
