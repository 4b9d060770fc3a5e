// Greedy non-maximum suppression (YOLOv5 / torchvision semantics).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace ascend_slim {

struct NmsParams {
    double iou_thres = 0.45;  // suppress when IoU > iou_thres (continuous IoU, no +1)
    int64_t max_det = 300;    // < 0: no cap
    int64_t max_nms = 30000;  // most candidates entering NMS (highest scores); < 0: no cap
    bool agnostic = false;    // false: only boxes of the same class suppress each other
};

// The one rule for a box every entry point (nms, postprocess, postprocess_decoded) keeps: all four corners
// finite and x1 <= x2, y1 <= y2 (zero width or height allowed). Others (NaN or infinite coordinates, inverted
// corners, negative width or height) are dropped, never reordered into a different box.
inline bool usable_box(float x1, float y1, float x2, float y2) {
    return std::isfinite(x1) && std::isfinite(y1) && std::isfinite(x2) && std::isfinite(y2) && x1 <= x2 &&
           y1 <= y2;
}

// Indices of the kept boxes (x1, y1, x2, y2 rows), highest score first; equal scores keep input order.
// Boxes with a NaN score or that are not usable_box are dropped.
std::vector<int64_t> nms(const float* boxes, int64_t box_stride, const float* scores, int64_t score_stride,
                         const int64_t* classes, int64_t n, const NmsParams& params);

}  // namespace ascend_slim
