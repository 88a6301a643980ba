// SPDX-License-Identifier: Apache-2.0
// bch_syndrome.cu -- DVB-S2 BCH outer code (EN 302 307-1 5.3.1): is the received word a codeword?
//
// Mirrors the remainder step of modem/fec/dvbs2/_cpu.py (_remainder: byte-table division, then
// the remaining bits one by one): r(x) x^P mod g(x) with the first bit the highest degree; the
// word is a codeword iff the remainder is zero. Integer arithmetic -> BIT-EXACT. Words with a
// non-zero remainder are handed to the CPU algebraic decoder by the wrapper (they are rare once
// the LDPC decoder has converged).
//
// Layouts: bits (B, stride) uint8 rows, the first n used; table (256, nw) uint64 and gen (nw,)
// uint64 as BCHCode._tables (P parity bits left-aligned in nw <= 4 words); nonzero (B,) uint8 out.
// Launch: one thread per word, grid-stride, any block size.
#include "common.cuh"

typedef unsigned long long u64;

__global__ void bch_remainder_nonzero(const unsigned char* __restrict__ bits, i64 B, i64 stride, i64 n,
                                      const u64* __restrict__ table, const u64* __restrict__ gen, int nw,
                                      unsigned char* __restrict__ nonzero) {
  for (i64 b = global_tid(); b < B; b += global_stride()) {
    const unsigned char* c = bits + b * stride;
    u64 reg[4] = {0, 0, 0, 0};
    i64 nbytes = n / 8;
    for (i64 i = 0; i < nbytes; ++i) {
      u64 byte = 0;
      for (int j = 0; j < 8; ++j) byte = (byte << 1) | (u64)c[8 * i + j];
      u64 idx = ((reg[0] >> 56) ^ byte) & 0xFFull;
      for (int w = 0; w < nw - 1; ++w) reg[w] = (reg[w] << 8) | (reg[w + 1] >> 56);
      reg[nw - 1] <<= 8;
      for (int w = 0; w < nw; ++w) reg[w] ^= table[idx * nw + w];
    }
    for (i64 i = 8 * nbytes; i < n; ++i) {
      u64 fb = (reg[0] >> 63) ^ (u64)c[i];
      for (int w = 0; w < nw - 1; ++w) reg[w] = (reg[w] << 1) | (reg[w + 1] >> 63);
      reg[nw - 1] <<= 1;
      if (fb & 1ull)
        for (int w = 0; w < nw; ++w) reg[w] ^= gen[w];
    }
    u64 any = 0;
    for (int w = 0; w < nw; ++w) any |= reg[w];
    nonzero[b] = any ? 1 : 0;
  }
}
