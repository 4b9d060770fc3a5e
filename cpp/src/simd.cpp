#include "ascend_slim/simd.hpp"

#include <atomic>

namespace ascend_slim {

namespace {
#ifdef ASCEND_SLIM_SSE2
std::atomic<bool> enabled{true};
#else
std::atomic<bool> enabled{false};
#endif

bool cpu_has_avx2() {
#ifdef ASCEND_SLIM_AVX2
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
#else
    return false;
#endif
}
}  // namespace

bool simd_enabled() { return enabled.load(std::memory_order_relaxed); }

void set_simd_enabled(bool on) {
#ifdef ASCEND_SLIM_SSE2
    enabled.store(on, std::memory_order_relaxed);
#else
    (void)on;
#endif
}

bool avx2_enabled() { return simd_enabled() && cpu_has_avx2(); }

}  // namespace ascend_slim
