// Run-time switch between the SIMD kernels and their portable scalar twins (tests check both paths).
#pragma once

#if defined(__SSE2__) || defined(_M_X64)
#define ASCEND_SLIM_SSE2 1
#include <emmintrin.h>
#endif

namespace ascend_slim {

// True unless switched off; without SSE2 (non-x86 builds) only the scalar paths exist and this is false.
bool simd_enabled();
void set_simd_enabled(bool enabled);

}  // namespace ascend_slim
