#include "ascend_slim/simd.hpp"

#include <atomic>

namespace ascend_slim {

namespace {
#ifdef ASCEND_SLIM_SSE2
std::atomic<bool> enabled{true};
#else
std::atomic<bool> enabled{false};
#endif
}  // namespace

bool simd_enabled() { return enabled.load(std::memory_order_relaxed); }

void set_simd_enabled(bool on) {
#ifdef ASCEND_SLIM_SSE2
    enabled.store(on, std::memory_order_relaxed);
#else
    (void)on;
#endif
}

}  // namespace ascend_slim
