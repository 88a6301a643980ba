// SPDX-License-Identifier: Apache-2.0
// ldpc_layered_i16.cu -- DVB-S2 LDPC layered min-sum, 16-bit fixed point, one thread per row of
// a 360-check layer (EN 302 307-1 5.3.2 quasi-cyclic structure), one block per frame.
//
// Mirrors modem/fec/dvbs2/_cpu.py ldpc_decode_minsum_i16 (the CPU default 'minsum') BIT-EXACTLY
// (declared: BIT-EXACT; integer arithmetic, and the per-frame scale computed in the CPU's float64
// order by one thread):
//  * fixed point: LLR magnitudes clipped at ``clip`` first; sc = 1024 n / sum_v min(|llr_v|, clip)
//    (sequential float64 sum in codeword order; 1 if 0); L_v = rint(clamp(clamp(llr, +-clip) sc,
//    +-32767)) (half to even), a negative value never rounds to 0;
//    offset bq = rint(min(beta sc, 32767)); scale A = rint(alpha 2^15) (host);
//  * layer i = checks i + q j (rows j = 0..359); edge e of the layer = variables lay_v0[e] + jj
//    meeting row (jj + lay_rho[e]) mod 360, jj < lay_cnt[e]; all edges of a layer read the
//    posteriors of the layer start (pass 1: t = sat(L - R), min1 / min2 / sign parity per row),
//    then pass 2 writes r = +-(min2 if |t| == min1 else min1) scaled by (max(m - bq, 0) A + 2^14)
//    >> 15, L = sat(t + r); an edge flagged lay_delta (a group meeting the layer twice) adds its
//    change instead, L = clamp(L + r - r_old), after the earlier edges of the layer (barrier);
//  * early stop: syndrome of sign(L) before the first iteration (0 iterations) and after each.
// Saturation everywhere: [-32767, 32767].
//
// Layouts: llr (B, n) float32 codeword order; old (n,) int32 codeword index of decoder variable v;
// lay_ptr (q+1,) lay_v0 lay_rho lay_cnt (ne,) int32, lay_delta (ne,) uint8 (LDPCGraph); L (B, n)
// int16 work; R (B, ne*360) int16 work; hard (B, n) uint8 codeword order; ok (B,) uint8; iters
// (B,) int32. Launch: grid = B, block 360 (or any size: rows are strided; 1 under host emulation);
// static shared memory 360 * (LDPC_I16_MAXDEG + 4) int16 (layer degree <= 32 in all 21 codes).
#include "common.cuh"

#define LDPC_Z 360
#define LDPC_SAT 32767
#define LDPC_I16_MAXDEG 32

MODEM_DEV int ldpc_sat16(int x) { return x < -LDPC_SAT ? -LDPC_SAT : (x > LDPC_SAT ? LDPC_SAT : x); }

MODEM_DEV int ldpc_row_elem(int j, int rho, int cnt) {   // jj of row j on an edge, or -1
  int jj = j - rho;
  if (jj < 0) jj += LDPC_Z;
  return jj < cnt ? jj : -1;
}

MODEM_DEV int ldpc_i16_bad(const short* __restrict__ L, const int* __restrict__ lay_ptr, const int* __restrict__ v0,
                           const int* __restrict__ rho, const int* __restrict__ cnt, int q, int tid, int bd) {
  int bad = 0;
  for (int i = 0; i < q; ++i)
    for (int j = tid; j < LDPC_Z; j += bd) {
      int p = 0;
      for (int e = lay_ptr[i]; e < lay_ptr[i + 1]; ++e) {
        int jj = ldpc_row_elem(j, rho[e], cnt[e]);
        if (jj >= 0) p ^= L[v0[e] + jj] < 0 ? 1 : 0;
      }
      bad |= p;
    }
  return bad;
}

__global__ void ldpc_layered_i16(const float* __restrict__ llr, const int* __restrict__ old,
                                 const int* __restrict__ lay_ptr, const int* __restrict__ lay_v0,
                                 const int* __restrict__ lay_rho, const int* __restrict__ lay_cnt,
                                 const unsigned char* __restrict__ lay_delta, int q, i64 n, i64 ne, int max_iter,
                                 int A, double beta, double clip, short* __restrict__ Lw, short* __restrict__ Rw,
                                 unsigned char* __restrict__ hard, unsigned char* __restrict__ ok,
                                 int* __restrict__ iters) {
  __shared__ short T[LDPC_I16_MAXDEG * LDPC_Z];
  __shared__ short sM1[LDPC_Z], sM1s[LDPC_Z], sM2s[LDPC_Z], sS[LDPC_Z];
  __shared__ double s_sc;
  __shared__ int s_bq;
  const i64 f = blockIdx.x;
  const int tid = threadIdx.x, bd = blockDim.x;
  short* L = Lw + f * n;
  short* R = Rw + f * ne * LDPC_Z;
  if (tid == 0) {
    double tot = 0.0;
    for (i64 v = 0; v < n; ++v) {
      double a = (double)fabsf(llr[f * n + v]);
      tot += a < clip ? a : clip;
    }
    double sc = tot > 0.0 ? 1024.0 * (double)n / tot : 1.0;
    double b = beta * sc;
    s_sc = sc;
    s_bq = (int)rint(b < (double)LDPC_SAT ? b : (double)LDPC_SAT);
  }
  __syncthreads();
  const double sc = s_sc;
  const int bq = s_bq;
  for (i64 v = tid; v < n; v += bd) {
    double x = (double)llr[f * n + old[v]];
    x = x > -clip ? x : -clip;
    x = (x < clip ? x : clip) * sc;
    x = x > -(double)LDPC_SAT ? x : -(double)LDPC_SAT;
    x = x < (double)LDPC_SAT ? x : (double)LDPC_SAT;
    double qx = rint(x);
    if (x < 0.0 && qx == 0.0) qx = -1.0;
    L[v] = (short)qx;
  }
  for (i64 e = tid; e < ne * LDPC_Z; e += bd) R[e] = 0;
  __syncthreads();
  int bad = __syncthreads_or(ldpc_i16_bad(L, lay_ptr, lay_v0, lay_rho, lay_cnt, q, tid, bd));
  int it = 0;
  while (bad && it < max_iter) {
    ++it;
    for (int i = 0; i < q; ++i) {
      const int e0 = lay_ptr[i], e1 = lay_ptr[i + 1];
      for (int j = tid; j < LDPC_Z; j += bd) {          // pass 1: row j's min1 / min2 / sign
        int m1 = LDPC_SAT, m2 = LDPC_SAT, s = 0;
        for (int e = e0; e < e1; ++e) {
          int jj = ldpc_row_elem(j, lay_rho[e], lay_cnt[e]);
          if (jj < 0) continue;
          int t = ldpc_sat16((int)L[lay_v0[e] + jj] - (int)R[(i64)e * LDPC_Z + jj]);
          T[(e - e0) * LDPC_Z + j] = (short)t;
          int a = t < 0 ? -t : t;
          int mx = a > m1 ? a : m1;
          m2 = m2 < mx ? m2 : mx;
          m1 = m1 < a ? m1 : a;
          s ^= t;
        }
        int d1 = m1 - bq, d2 = m2 - bq;
        d1 = d1 > 0 ? d1 : 0;
        d2 = d2 > 0 ? d2 : 0;
        sM1[j] = (short)m1;
        sS[j] = (short)s;
        sM1s[j] = (short)((d1 * A + 16384) >> 15);
        sM2s[j] = (short)((d2 * A + 16384) >> 15);
      }
      __syncthreads();
      for (int e = e0; e < e1; ++e) {                   // pass 2, edge by edge (delta edges last-writer)
        const int delta = lay_delta[e];
        if (delta) __syncthreads();                     // the layer's earlier writes to these variables
        for (int j = tid; j < LDPC_Z; j += bd) {
          int jj = ldpc_row_elem(j, lay_rho[e], lay_cnt[e]);
          if (jj < 0) continue;
          int t = T[(e - e0) * LDPC_Z + j];
          int at = t < 0 ? -t : t;
          int mag = at == sM1[j] ? sM2s[j] : sM1s[j];
          int r = (((int)sS[j] ^ t) < 0) ? -mag : mag;
          i64 ri = (i64)e * LDPC_Z + jj, v = (i64)lay_v0[e] + jj;
          if (delta) {
            int x = (int)L[v] + r - (int)R[ri];
            R[ri] = (short)r;
            L[v] = (short)ldpc_sat16(x);
          } else {
            R[ri] = (short)r;
            L[v] = (short)ldpc_sat16(t + r);
          }
        }
      }
      __syncthreads();
    }
    bad = __syncthreads_or(ldpc_i16_bad(L, lay_ptr, lay_v0, lay_rho, lay_cnt, q, tid, bd));
  }
  for (i64 v = tid; v < n; v += bd) hard[f * n + old[v]] = L[v] < 0 ? 1 : 0;
  if (tid == 0) {
    ok[f] = bad ? 0 : 1;
    iters[f] = bad ? max_iter : it;
  }
}
