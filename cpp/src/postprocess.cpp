#include "ascend_slim/postprocess.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>

namespace ascend_slim {

PostprocessParams resolve_mode(PostprocessParams params) {
    if (params.mode == Mode::MindX) {
        params.rule.multi_label = false;
        params.nms.agnostic = false;
        params.nms.max_det = -1;
        params.nms.max_nms = -1;
    }
    return params;
}

std::vector<Box> select_boxes(std::vector<Box> candidates, const PostprocessParams& params) {
    if (params.filter_classes) {
        const auto& keep = params.classes;
        candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                        [&](const Box& b) {
                                            return std::find(keep.begin(), keep.end(), b.cls) == keep.end();
                                        }),
                         candidates.end());
    }
    const size_t n = candidates.size();
    std::vector<float> coords(4 * n), scores(n);
    std::vector<int64_t> classes(n);
    for (size_t i = 0; i < n; ++i) {
        const Box& b = candidates[i];
        coords[4 * i] = b.x1, coords[4 * i + 1] = b.y1, coords[4 * i + 2] = b.x2, coords[4 * i + 3] = b.y2;
        scores[i] = b.score;
        classes[i] = b.cls;
    }
    const std::vector<int64_t> keep =
        nms(coords.data(), 4, scores.data(), 1, classes.data(), static_cast<int64_t>(n), params.nms);
    std::vector<Box> out;
    out.reserve(keep.size());
    for (int64_t i : keep) out.push_back(candidates[i]);
    return out;
}

namespace {

// num_threads (at least 1) capped at the n items and the machine's hardware threads.
int64_t worker_count(int64_t n, int64_t num_threads) {
    int64_t workers = std::min(std::max<int64_t>(1, num_threads), std::max<int64_t>(1, n));
    const unsigned machine = std::thread::hardware_concurrency();  // 0 when unknown
    if (machine > 0) workers = std::min<int64_t>(workers, machine);
    return workers;
}

}  // namespace

void parallel_for(int64_t n, int64_t num_threads, const std::function<void(int64_t)>& fn) {
    const int64_t workers = worker_count(n, num_threads);
    if (workers <= 1) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    // Each worker keeps its own first exception (no lock that could throw); after one, the rest stop early.
    std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    auto work = [&](int64_t worker) noexcept {
        for (int64_t i = next++; i < n && !failed.load(std::memory_order_relaxed); i = next++) {
            try {
                fn(i);
            } catch (...) {
                errors[static_cast<size_t>(worker)] = std::current_exception();
                failed = true;
            }
        }
    };
    std::vector<std::thread> threads;
    try {
        threads.reserve(static_cast<size_t>(workers - 1));
        for (int64_t t = 1; t < workers; ++t) threads.emplace_back(work, t);
    } catch (const std::exception&) {
        // The system refused another thread (std::system_error) or its bookkeeping (std::bad_alloc): the
        // threads already running and this one share the work.
    }
    work(0);
    for (auto& t : threads) t.join();
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);
}

void scale_boxes(float* dets, int64_t n, double ratio, double pad_left, double pad_top, int64_t height,
                 int64_t width) {
    const double w = static_cast<double>(width), h = static_cast<double>(height);
    for (int64_t i = 0; i < n; ++i) {
        float* d = dets + 6 * i;
        d[0] = static_cast<float>(std::clamp((d[0] - pad_left) / ratio, 0.0, w));
        d[1] = static_cast<float>(std::clamp((d[1] - pad_top) / ratio, 0.0, h));
        d[2] = static_cast<float>(std::clamp((d[2] - pad_left) / ratio, 0.0, w));
        d[3] = static_cast<float>(std::clamp((d[3] - pad_top) / ratio, 0.0, h));
    }
}

}  // namespace ascend_slim
