// SPDX-License-Identifier: Apache-2.0
// host_emulation.cuh -- compile the kernels as host C++ (g++) to run them thread by thread on a
// CPU, for tests on machines without a GPU (tests/test_kernels_compile.py). Not used by NVRTC.
// Blocks and threads are run one after the other, so kernels that synchronise inside a block
// (__syncthreads) must be launched with blockDim.x == 1 here; atomics are plain operations.
#pragma once
#include <cmath>
#include <cstdint>
#include <algorithm>

struct modem_dim3 { unsigned int x = 1, y = 1, z = 1; };
inline thread_local modem_dim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static  // blocks run one after the other, one thread each
#define MODEM_DEV inline
#define MODEM_HOST_INLINE inline

inline void __syncthreads() {}
inline int __syncthreads_or(int x) { return x; }
inline int atomicAdd(int* p, int v) { int o = *p; *p += v; return o; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
inline double __ddiv_rn(double a, double b) { volatile double r = a / b; return r; }
using std::exp; using std::log; using std::log1p; using std::fabs; using std::sqrt; using std::floor;
using std::fmin; using std::fmax; using std::rint;
inline double cyl_bessel_i0(double x) { return std::cyl_bessel_i(0.0, x); }
inline double cyl_bessel_i1(double x) { return std::cyl_bessel_i(1.0, x); }

// Run a kernel over a grid: MODEM_EMULATE(kernel, grid, block, args...)
#define MODEM_EMULATE(KERNEL, GRID, BLOCK, ...)                                  \
  do {                                                                           \
    gridDim.x = (GRID); blockDim.x = (BLOCK);                                    \
    for (unsigned int b_ = 0; b_ < (unsigned int)(GRID); ++b_)                   \
      for (unsigned int t_ = 0; t_ < (unsigned int)(BLOCK); ++t_) {              \
        blockIdx.x = b_; threadIdx.x = t_; KERNEL(__VA_ARGS__);                   \
      }                                                                          \
  } while (0)
