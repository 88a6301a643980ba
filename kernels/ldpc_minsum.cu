// SPDX-License-Identifier: Apache-2.0
// ldpc_minsum.cu -- DVB-S2 LDPC layered normalized/offset min-sum (EN 302 307-1 5.3.2 codes),
// float32, many frames at once, early termination per frame on a satisfied syndrome.
//
// Mirrors modem/fec/dvbs2/_cpu.py ldpc_decode_minsum_f32 BIT-EXACTLY (declared: BIT-EXACT):
//  * frames whose channel hard decisions already satisfy every check: iterations 0, hard = llr < 0;
//  * otherwise up to max_iter iterations of the layered schedule over the checks in the
//    decoder's processing order (LDPCGraph.dec_ptr / dec_var, variables in decoder numbering,
//    codeword index dec_old[v]); after each iteration the syndrome of sign(L) is checked and the
//    frame stops at the first iteration where every check holds (iterations = that count), else
//    after max_iter (parity_ok false);
//  * check update: t = L[v] - R[e]; min1/min2/sign over the edges; magnitudes
//    alpha * max(min - beta, 0); an edge whose own alpha * max(|t| - beta, 0) equals the scaled
//    min1 receives min2, the others min1; R[e] = sign * mag; L[v] = t + R[e]. Every float op is
//    the CPU's, in the same order (products by +-1 and min/max are exact, so FMA contraction
//    cannot change a result).
//
// Parallel schedule that stays serial-exact: the CPU processes check positions 0..m-1 one after
// the other. Checks are grouped into "waves" (modem/fec/dvbs2/_gpu.py wave_schedule): a check's
// wave is 1 + the largest wave of the earlier checks it shares a variable with. Checks of one wave
// share no variable, and every earlier check touching a variable runs in an earlier wave, so
// running a wave's checks in parallel (barrier between waves) reads and writes exactly what the
// serial order does.
//
// Message storage (compressed, exact): per check the scaled (min1, min2) float32 pair, per edge
// one byte: bit 0 = R negative, bit 1 = R took min2. R[e] is rebuilt as +-(min1 | min2), which
// equals the CPU's stored s * mag bit for bit (initially both 0: R = +0, as the CPU's zeros).
//
// Layouts: llr (B, n) float32 C order (codeword order); L (B, n) float32 work (decoder order);
// mins (B, m, 2) float32; eflag (B, E) uint8; hard (B, n) uint8 (codeword order); ok (B,) uint8;
// iters (B,) int32. Launch: one block per frame (grid = B), any block size (256 suggested;
// blockDim.x == 1 under host emulation).
#include "common.cuh"

#define LDPC_BIG 3.0e38f

MODEM_DEV float ldpc_scaled(float x, float alpha, float beta) {
  float d = x - beta;
  return alpha * (d > 0.0f ? d : 0.0f);   // alpha * max(x - beta, 0)
}

MODEM_DEV float ldpc_r_old(unsigned char fl, float m1, float m2) {
  float mag = (fl & 2) ? m2 : m1;
  return (fl & 1) ? -mag : mag;
}

// Layered min-sum update of the check at processing position c of one frame.
MODEM_DEV void ldpc_check_update(float* __restrict__ L, float* __restrict__ mins, unsigned char* __restrict__ ef,
                                 const int* __restrict__ ptr, const int* __restrict__ var, i64 c,
                                 float alpha, float beta) {
  int e0 = ptr[c], e1 = ptr[c + 1];
  float om1 = mins[2 * c], om2 = mins[2 * c + 1];
  float m1 = LDPC_BIG, m2 = LDPC_BIG, sg = 1.0f;
  for (int e = e0; e < e1; ++e) {
    float t = L[var[e]] - ldpc_r_old(ef[e], om1, om2);
    float at = fabsf(t);
    float mx = at > m1 ? at : m1;          // max(at, m1)
    m2 = m2 < mx ? m2 : mx;                // min(M2, max(at, m1))
    m1 = m1 < at ? m1 : at;                // min(m1, at)
    sg = t < 0.0f ? -sg : sg;
  }
  float s1 = ldpc_scaled(m1, alpha, beta), s2 = ldpc_scaled(m2, alpha, beta);
  for (int e = e0; e < e1; ++e) {
    int v = var[e];
    float t = L[v] - ldpc_r_old(ef[e], om1, om2);   // the same t as in the first pass
    float at = ldpc_scaled(fabsf(t), alpha, beta);
    int take2 = at == s1;
    float mag = take2 ? s2 : s1;
    float s = t < 0.0f ? -sg : sg;
    float rr = s * mag;
    ef[e] = (unsigned char)((s < 0.0f ? 1 : 0) | (take2 ? 2 : 0));
    L[v] = t + rr;
  }
  mins[2 * c] = s1;
  mins[2 * c + 1] = s2;
}

// 1 where the hard decisions (L < 0) violate check c.
MODEM_DEV int ldpc_check_violated(const float* __restrict__ L, const int* __restrict__ ptr,
                                  const int* __restrict__ var, i64 c) {
  int s = 0;
  for (int e = ptr[c]; e < ptr[c + 1]; ++e) s ^= L[var[e]] < 0.0f ? 1 : 0;
  return s;
}

__global__ void ldpc_minsum_decode_f32(const float* __restrict__ llr, const int* __restrict__ ptr,
                                       const int* __restrict__ var, const int* __restrict__ old,
                                       const int* __restrict__ wave_ptr, const int* __restrict__ wave_chk,
                                       int n_waves, i64 n, i64 m, i64 E, int max_iter, float alpha, float beta,
                                       float* __restrict__ Lw, float* __restrict__ minsw,
                                       unsigned char* __restrict__ efw, unsigned char* __restrict__ hard,
                                       unsigned char* __restrict__ ok, int* __restrict__ iters) {
  const i64 f = blockIdx.x;
  const int tid = threadIdx.x, bd = blockDim.x;
  float* L = Lw + f * n;
  float* mins = minsw + f * 2 * m;
  unsigned char* ef = efw + f * E;
  for (i64 v = tid; v < n; v += bd) L[v] = llr[f * n + old[v]];
  for (i64 c = tid; c < 2 * m; c += bd) mins[c] = 0.0f;
  for (i64 e = tid; e < E; e += bd) ef[e] = 0;
  __syncthreads();
  int bad = 0;
  for (i64 c = tid; c < m; c += bd) bad |= ldpc_check_violated(L, ptr, var, c);
  bad = __syncthreads_or(bad);
  int it = 0;
  while (bad && it < max_iter) {
    ++it;
    for (int w = 0; w < n_waves; ++w) {
      for (int x = wave_ptr[w] + tid; x < wave_ptr[w + 1]; x += bd)
        ldpc_check_update(L, mins, ef, ptr, var, wave_chk[x], alpha, beta);
      __syncthreads();
    }
    bad = 0;
    for (i64 c = tid; c < m; c += bd) bad |= ldpc_check_violated(L, ptr, var, c);
    bad = __syncthreads_or(bad);
  }
  for (i64 v = tid; v < n; v += bd) hard[f * n + old[v]] = L[v] < 0.0f ? 1 : 0;
  if (tid == 0) {
    ok[f] = bad ? 0 : 1;
    iters[f] = bad ? max_iter : it;
  }
}
