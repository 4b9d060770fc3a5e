// YOLOv5 head decoding: raw (pre-sigmoid) heads or already-decoded [K, 5+nc] rows -> candidate boxes.
#pragma once

#include <cstdint>
#include <vector>

namespace ascend_slim {

enum class ElemType { F32, F16 };

// One raw detection head of a batch. `cells_last`: [N, na, ny, nx, no] (YOLOv5 after permute, the Ascend
// out-node layout); otherwise the conv layout [N, na*no, ny, nx]. no = 5 + number of classes.
struct RawHead {
    const void* data = nullptr;
    ElemType type = ElemType::F32;
    bool cells_last = true;
    int64_t batch = 0, na = 0, ny = 0, nx = 0, no = 0;
    double stride = 0;
    std::vector<double> anchors;  // na (w, h) pairs in input pixels
};

// Already-decoded rows [N, K, no]: x, y, w, h in input pixels, objectness and class probabilities.
struct DecodedRows {
    const void* data = nullptr;
    ElemType type = ElemType::F32;
    int64_t batch = 0, count = 0, no = 0;
};

// Which (cell, class) pairs become candidates: objectness > obj_thres and objectness * class > conf_thres
// (both strict); with multi_label every class passing, otherwise only the best class (first on ties).
struct CandidateRule {
    double conf_thres = 0.25;
    double obj_thres = 0.25;
    bool multi_label = false;
};

struct Box {
    float x1, y1, x2, y2, score;
    int32_t cls;
};

// Candidates of image `image`, in head order, then anchor, row, column, class. Decisions are taken on
// double-precision sigmoids; rows with a non-finite box (NaN logits) are dropped.
std::vector<Box> decode_raw(const std::vector<RawHead>& heads, int64_t image, const CandidateRule& rule);
// decode_rows throws std::invalid_argument for an objectness (any row) or class score (rows whose objectness
// passes) outside [0, 1]: such rows are logits, not probabilities.
std::vector<Box> decode_rows(const DecodedRows& rows, int64_t image, const CandidateRule& rule);

}  // namespace ascend_slim
