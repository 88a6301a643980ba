// SPDX-License-Identifier: Apache-2.0
// sync_correlate.cu -- soft sync-marker correlation.
//
// massey_metric_f64 mirrors modem/sync/frame_sync.py _massey_2d (Massey's optimum frame-sync
// metric over LLRs, positive = bit 0): for every row r and position p
//     c = sum_i s_i * (llr[p+i] / 2),  e = sum_i lncosh(llr[p+i] / 2),  s_i = 1 - 2 a_i
//     metric = c - e              (known polarity; inverted = 0)
//     metric = lncosh(c) - e      (polarity free; inverted = c < 0)
// with lncosh(x) = |x| + log1p(exp(-2|x|)) - ln 2, summed over i in increasing order as the CPU.
// csm_symbol_lse_f64 / csm_llr_f64 mirror modem/sync/codeword_sync.py csm_llr (SCPPM CSM
// log-likelihood ratio over slot counts): z = w * y, lse_j = max z + ln sum exp(z - max) - ln M,
//     Lambda(p) = sum_i (z[p+i, c_i] - lse[p+i]).
// Declared: TOLERANCE (float64; libm exp/log1p may differ from the CPU's by an ulp; the
// symbol log-sum-exp is summed sequentially, NumPy pairwise).
//
// Layouts: llr (R, n) float64 C order; marker signs (m,) float64; metric (R, n-m+1) float64;
// inverted (R, n-m+1) uint8. counts (n_sym, stride) float64 (first M columns = data slots);
// pattern (L,) int32; lse (n_sym,) float64; out (n_sym - L + 1,) float64.
// Launch: one thread per output element, grid-stride, any block size.
#include "common.cuh"

MODEM_DEV double sync_lncosh(double x) {
  double ax = fabs(x);
  return ax + log1p(exp(-2.0 * ax)) - 0.6931471805599453;
}

__global__ void massey_metric_f64(const double* __restrict__ llr, const double* __restrict__ sgn, int m,
                                  i64 rows, i64 n, int polarity_free, double* __restrict__ metric,
                                  unsigned char* __restrict__ inverted) {
  const i64 n_pos = n - m + 1;
  for (i64 g = global_tid(); g < rows * n_pos; g += global_stride()) {
    i64 r = g / n_pos, p = g % n_pos;
    const double* x = llr + r * n + p;
    double c = 0.0, e = 0.0;
    for (int i = 0; i < m; ++i) {
      c += sgn[i] * (0.5 * x[i]);
      e += sync_lncosh(0.5 * x[i]);
    }
    if (polarity_free) {
      metric[g] = sync_lncosh(c) - e;
      inverted[g] = c < 0.0 ? 1 : 0;
    } else {
      metric[g] = c - e;
      inverted[g] = 0;
    }
  }
}

__global__ void csm_symbol_lse_f64(const double* __restrict__ counts, i64 n_sym, i64 stride, int M, double w,
                                   double* __restrict__ lse) {
  for (i64 j = global_tid(); j < n_sym; j += global_stride()) {
    const double* y = counts + j * stride;
    double zmax = y[0] * w;
    for (int s = 1; s < M; ++s) { double z = y[s] * w; zmax = z > zmax ? z : zmax; }
    double acc = 0.0;
    for (int s = 0; s < M; ++s) acc += exp(y[s] * w - zmax);
    lse[j] = zmax + log(acc) - log((double)M);
  }
}

__global__ void csm_llr_f64(const double* __restrict__ counts, i64 n_sym, i64 stride, const int* __restrict__ pattern,
                            int L, double w, const double* __restrict__ lse, double* __restrict__ out) {
  const i64 n_pos = n_sym - L + 1;
  for (i64 p = global_tid(); p < n_pos; p += global_stride()) {
    double acc = 0.0;
    for (int i = 0; i < L; ++i) acc += counts[(p + i) * stride + pattern[i]] * w - lse[p + i];
    out[p] = acc;
  }
}
