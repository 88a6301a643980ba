// SPDX-License-Identifier: Apache-2.0
// host_emulation.cuh -- compile the kernels as host C++ (g++) to run them thread by thread on a
// CPU, for tests on machines without a GPU (tests/test_kernels_compile.py). Not used by NVRTC.
// Default: blocks and threads are run one after the other, so kernels that synchronise inside a
// block (__syncthreads) must be launched with blockDim.x == 1 here; atomics are plain operations.
// With MODEM_EMULATE_THREADS defined (modem.gpu.launch.HostEmulationLauncher(threads=True)), a
// block runs with its real size: every GPU thread is a fiber (ucontext) with its own stack, run
// until it reaches a barrier; when all threads of the block have reached it (or ended),
// __syncthreads_or's result is set and they resume, in thread order (or reversed:
// modem_emu_set_reverse). __shared__ variables are shared by the block's threads. A missing
// barrier therefore shows deterministically: the threads before it in the order run on past it.
#pragma once
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#ifdef MODEM_EMULATE_THREADS
#include <functional>
#include <vector>
#include <ucontext.h>
#endif

struct modem_dim3 { unsigned int x = 1, y = 1, z = 1; };
inline thread_local modem_dim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static  // blocks run one after the other, one thread each
#define MODEM_DEV inline
#define MODEM_HOST_INLINE inline

#ifdef MODEM_EMULATE_THREADS
// The running block's fibers (one per GPU thread) and its scheduler.
struct ModemFibers {
  ucontext_t sched;
  std::vector<ucontext_t> ctx;
  std::vector<char> stacks;
  std::vector<unsigned char> done;
  unsigned cur = 0;
  int acc = 0, result = 0;
  std::function<void()> body;
};
inline ModemFibers* modem_fibers = nullptr;
inline int modem_emu_reverse = 0;       // resume the threads in reverse order
inline void modem_fiber_entry() {
  modem_fibers->body();
  modem_fibers->done[modem_fibers->cur] = 1;   // returns to uc_link: the scheduler
}
inline int __syncthreads_or(int x) {
  ModemFibers* f = modem_fibers;
  f->acc |= x ? 1 : 0;
  swapcontext(&f->ctx[f->cur], &f->sched);     // wait until every thread of the block is here
  return f->result;
}
inline void __syncthreads() { __syncthreads_or(0); }
inline int atomicAdd(int* p, int v) { int o = *p; *p += v; return o; }   // fibers never preempt

inline void modem_run_grid(ModemFibers& f, unsigned grid, unsigned bl) {
  const size_t stack = 128 * 1024;
  f.ctx.resize(bl);
  f.stacks.resize(stack * bl);
  f.done.assign(bl, 0);
  gridDim.x = grid;
  blockDim.x = bl;
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx.x = b;
    for (unsigned t = 0; t < bl; ++t) {
      f.done[t] = 0;
      getcontext(&f.ctx[t]);
      f.ctx[t].uc_stack.ss_sp = f.stacks.data() + stack * t;
      f.ctx[t].uc_stack.ss_size = stack;
      f.ctx[t].uc_link = &f.sched;
      makecontext(&f.ctx[t], (void (*)())modem_fiber_entry, 0);
    }
    unsigned live = bl;
    while (live) {                            // one round: every live thread up to its next barrier
      for (unsigned k = 0; k < bl; ++k) {
        const unsigned t = modem_emu_reverse ? bl - 1 - k : k;
        if (f.done[t]) continue;
        f.cur = t;
        threadIdx.x = t;
        swapcontext(&f.sched, &f.ctx[t]);
        if (f.done[t]) --live;
      }
      f.result = f.acc;
      f.acc = 0;
    }
  }
}
#else
inline void __syncthreads() {}
inline int __syncthreads_or(int x) { return x; }
inline int atomicAdd(int* p, int v) { int o = *p; *p += v; return o; }
#endif
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

#ifdef MODEM_EMULATE_ULP_NOISE
// A stand-in for the device's libm (tests/test_gpu_review2.py): CUDA's double exp, log and log1p
// are within 1 ulp of the exact value, not correctly rounded like glibc's (nearly always), so a
// GPU can differ from the CPU by an ulp there. Each result is moved one ulp up or down, the
// direction taken from the argument's bits. Built with -mfma -ffp-contract=fast as well, the
// emulation then rounds like a GPU might: claims of identical decisions can be checked on it.
inline double modem_ulp_noise(double x, double r) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  b ^= b >> 29;
  b *= 0x9E3779B97F4A7C15ull;
  b ^= b >> 32;
  return std::nextafter(r, (b & 1) ? HUGE_VAL : -HUGE_VAL);
}
inline double modem_noisy_exp(double x) { return modem_ulp_noise(x, std::exp(x)); }
inline double modem_noisy_log(double x) { return modem_ulp_noise(x, std::log(x)); }
inline double modem_noisy_log1p(double x) { return modem_ulp_noise(x, std::log1p(x)); }
#define exp(x) modem_noisy_exp(x)
#define log(x) modem_noisy_log(x)
#define log1p(x) modem_noisy_log1p(x)
#endif

// Run a kernel over a grid: MODEM_EMULATE(kernel, grid, block, args...)
#ifdef MODEM_EMULATE_THREADS
#define MODEM_EMULATE(KERNEL, GRID, BLOCK, ...)                                  \
  do {                                                                           \
    ModemFibers fib_;                                                            \
    fib_.body = [&] { KERNEL(__VA_ARGS__); };                                    \
    modem_fibers = &fib_;                                                        \
    modem_run_grid(fib_, (GRID), (BLOCK));                                       \
    modem_fibers = nullptr;                                                      \
  } while (0)
#else
#define MODEM_EMULATE(KERNEL, GRID, BLOCK, ...)                                  \
  do {                                                                           \
    gridDim.x = (GRID); blockDim.x = (BLOCK);                                    \
    for (unsigned int b_ = 0; b_ < (unsigned int)(GRID); ++b_)                   \
      for (unsigned int t_ = 0; t_ < (unsigned int)(BLOCK); ++t_) {              \
        blockIdx.x = b_; threadIdx.x = t_; KERNEL(__VA_ARGS__);                   \
      }                                                                          \
  } while (0)
#endif
