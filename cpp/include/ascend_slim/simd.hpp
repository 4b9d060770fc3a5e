// SIMD support: a run-time switch between the SIMD kernels and their portable scalar twins (tests check
// both paths), SSE2 (baseline on x86-64) and AVX2+FMA kernels chosen at run time on CPUs that have them.
#pragma once

#if defined(__SSE2__) || defined(_M_X64)
#define ASCEND_SLIM_SSE2 1
#include <emmintrin.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ASCEND_SLIM_AVX2 1
#define ASCEND_SLIM_AVX2_TARGET __attribute__((target("avx2,fma")))
#include <immintrin.h>
#endif

namespace ascend_slim {

// True unless switched off; without SSE2 (non-x86 builds) only the scalar paths exist and this is false.
bool simd_enabled();
void set_simd_enabled(bool enabled);

// simd_enabled() and the CPU runs AVX2 and FMA (always false where the AVX2 kernels are not compiled).
bool avx2_enabled();

}  // namespace ascend_slim
