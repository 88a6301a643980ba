// SPDX-License-Identifier: Apache-2.0
// dpsk_llr.cu -- DPSK bit LLRs from the two balanced-detector port energies (positive = bit 0).
//
// dpsk_llr_gaussian_f32 mirrors modem/modulation/dpsk.py llr_gaussian:
//     var = 2 M sigma2^2 + 2 es sigma2,  llr = float32(2 es (xa - xb) / var)
// in float64 with the CPU's operation order and no FMA contraction -> BIT-EXACT.
// dpsk_llr_exact_f32 mirrors llr_exact for M = 1 and M = 2 modes (Bessel I_0 / I_1):
//     llr = g(2 s sqrt(xa)/sigma2) - g(2 s sqrt(xb)/sigma2),   s = sqrt(es),
//     g(z) = ln I_{M-1}(z) - (M-1) ln(z/2)   (finite at z = 0: -ln Gamma(M); es = 0 gives llr 0)
// ln I_nu from cyl_bessel_i0/i1 below z = 700 and the large-argument expansion above (relative
// error < 1e-15 there); declared TOLERANCE (float32 output, rtol 1e-6).
//
// Layouts: xa, xb, es (n,) float64 (es_stride 0: one scalar es for all); erase (n,) uint8
// (erase_stride 0: a one-element array holding 0 = no erasures); out (n,) float32. Launch: one thread per bit, grid-stride, any block size.
#include "common.cuh"

__global__ void dpsk_llr_gaussian_f32(const double* __restrict__ xa, const double* __restrict__ xb,
                                      const double* __restrict__ es, int es_stride, double sigma2, int modes,
                                      const unsigned char* __restrict__ erase, int erase_stride, i64 n, float* __restrict__ out) {
  for (i64 g = global_tid(); g < n; g += global_stride()) {
    double e = es[g * es_stride];
    double var = __dadd_rn(__dmul_rn(__dmul_rn(2.0, (double)modes), __dmul_rn(sigma2, sigma2)),
                           __dmul_rn(__dmul_rn(2.0, e), sigma2));
    double v = __ddiv_rn(__dmul_rn(__dmul_rn(2.0, e), __dsub_rn(xa[g], xb[g])), var);
    out[g] = erase[g * erase_stride] ? 0.0f : (float)v;
  }
}

// g_nu(z) = ln I_nu(z) - nu ln(z/2), nu in {0, 1}, z >= 0 (the CPU's log_bessel_i_scaled: log(ive) + z
// - nu log(z/2), the series -ln Gamma(nu+1) + log1p(z^2 / (4 (nu+1))) where I_nu underflows or z = 0).
MODEM_DEV double log_bessel_i01_scaled(int nu, double z) {
  if (z < 700.0) {
    if (nu == 0) return log(cyl_bessel_i0(z));
    double i1 = cyl_bessel_i1(z);
    if (i1 > 0.0 && z > 1e-150) return log(i1) - log(z / 2.0);
    return log1p(z * z / 8.0);            // I_1(z) / (z/2) ~ 1 + z^2/8 (gammaln(2) = 0)
  }
  // I_nu(z) ~ e^z / sqrt(2 pi z) * sum_k (-1)^k a_k(nu) / z^k, mu = 4 nu^2
  double mu = 4.0 * nu * nu, x = 1.0 / (8.0 * z), term = 1.0, sum = 1.0;
  for (int k = 1; k <= 6; ++k) {
    double o = 2.0 * k - 1.0;
    term *= -(mu - o * o) * x / k;
    sum += term;
  }
  return z - 0.5 * log(2.0 * 3.141592653589793 * z) + log(sum) - nu * log(z / 2.0);
}

__global__ void dpsk_llr_exact_f32(const double* __restrict__ xa, const double* __restrict__ xb,
                                   const double* __restrict__ es, int es_stride, double sigma2, int modes,
                                   const unsigned char* __restrict__ erase, int erase_stride, i64 n, float* __restrict__ out) {
  for (i64 g = global_tid(); g < n; g += global_stride()) {
    double s = sqrt(es[g * es_stride]);
    double za = 2.0 * s * sqrt(xa[g]) / sigma2;
    double zb = 2.0 * s * sqrt(xb[g]) / sigma2;
    double v = log_bessel_i01_scaled(modes - 1, za) - log_bessel_i01_scaled(modes - 1, zb);
    out[g] = erase[g * erase_stride] ? 0.0f : (float)v;
  }
}
