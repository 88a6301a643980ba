// SPDX-License-Identifier: Apache-2.0
// common.cuh -- helpers shared by the modem's CUDA kernels.
//
// Every kernel file includes this header. It also lets the kernels compile as plain host C++
// (g++, no __CUDACC__) through host_emulation.cuh, so tests can run each kernel body on the CPU
// (thread by thread) where no GPU exists; kernels therefore use only: blockIdx/threadIdx/
// blockDim/gridDim .x, __syncthreads, __syncthreads_or, atomicAdd(int*), and the math below.
#pragma once

#ifdef __CUDACC__
#define MODEM_DEV __device__ __forceinline__
#define MODEM_HOST_INLINE
#else
#include "host_emulation.cuh"
#endif

typedef long long i64;
typedef unsigned int u32;

// Global linear thread index (64-bit: batch x length products exceed 2^31).
MODEM_DEV i64 global_tid() { return (i64)blockIdx.x * (i64)blockDim.x + (i64)threadIdx.x; }
MODEM_DEV i64 global_stride() { return (i64)gridDim.x * (i64)blockDim.x; }

MODEM_DEV int parity32(u32 x) {
#ifdef __CUDACC__
  return __popc(x) & 1;
#else
  return __builtin_popcount(x) & 1;
#endif
}
