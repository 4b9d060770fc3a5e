// Decode + NMS per image, batch parallelism, and mapping boxes back to original-image pixels.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ascend_slim/decode.hpp"
#include "ascend_slim/nms.hpp"

namespace ascend_slim {

// "yolov5": Ultralytics non_max_suppression (multi-label optional, 30000-candidate cap, max_det).
// "mindx": MindX libMpYOLOv5PostProcessor (single best class, per-class NMS, no caps).
enum class Mode { YOLOv5, MindX };

struct PostprocessParams {
    Mode mode = Mode::YOLOv5;
    CandidateRule rule;
    NmsParams nms;
    bool filter_classes = false;
    std::vector<int64_t> classes;  // kept class ids when filter_classes
};

// The effective settings of a mode (mindx: single label, per-class NMS, no caps).
PostprocessParams resolve_mode(PostprocessParams params);

// Candidates -> class filter -> NMS, sorted by score (descending, stable).
std::vector<Box> select_boxes(std::vector<Box> candidates, const PostprocessParams& params);

// Runs fn(i) for i in [0, n) on num_threads threads capped at n and the machine's hardware threads, this one included; when the system
// refuses a thread, the threads already started share the work. Every thread is joined on every path; an
// exception thrown by fn stops the remaining items and is rethrown here, on the calling thread.
void parallel_for(int64_t n, int64_t num_threads, const std::function<void(int64_t)>& fn);

// Maps [x1, y1, x2, y2, ...] rows (stride 6) from letterbox to original pixels in place, clipped to the image.
void scale_boxes(float* dets, int64_t n, double ratio, double pad_left, double pad_top, int64_t height,
                 int64_t width);

}  // namespace ascend_slim
