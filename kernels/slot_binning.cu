// SPDX-License-Identifier: Apache-2.0
// slot_binning.cu -- photon time tags -> slot counts, and Poisson PPM slot LLRs.
//
// slot_bin_counts mirrors the TRACK step of modem/sync/slot_clock.py SlotClockRecovery:
//     x = float64(tag) - start;  j = min(floor(x / period), n_slots - 1);  counts[j] += 1
// for tags in [start, start + n_slots * period) (the caller selects them, as the CPU does with
// searchsorted); tags before start (x < 0) are ignored. Same float64 operations -> BIT-EXACT counts.
// slot_llr_f32 mirrors modem/channel/poisson.py slot_llr: float32(count) * float32(w) -
// float32(ns), two roundings (no FMA contraction) -> BIT-EXACT.
//
// Layouts: tags (N,) int64 ps; counts (n_slots,) int32 (zeroed by the caller); slot_llr: counts
// (N,) float32 (any integer counts converted by the caller), out (N,) float32.
// Launch: one thread per element, grid-stride, any block size (256 suggested).
#include "common.cuh"

__global__ void slot_bin_counts(const i64* __restrict__ tags, i64 n_tags, double start, double period,
                                i64 n_slots, int* __restrict__ counts) {
  for (i64 g = global_tid(); g < n_tags; g += global_stride()) {
    double x = __dsub_rn((double)tags[g], start);
    if (x < 0.0) continue;
    double u = __ddiv_rn(x, period);
    i64 j = (i64)floor(u);
    if (j > n_slots - 1) j = n_slots - 1;
    atomicAdd(counts + j, 1);
  }
}

__global__ void slot_llr_f32(const float* __restrict__ counts, i64 n, float w, float ns, float* __restrict__ out) {
  for (i64 g = global_tid(); g < n; g += global_stride())
    out[g] = __fsub_rn(__fmul_rn(counts[g], w), ns);
}
