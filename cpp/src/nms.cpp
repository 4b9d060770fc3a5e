#include "ascend_slim/nms.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>
#include <limits>
#include <utility>

namespace ascend_slim {

namespace {

// The largest float t with (float iou > t) <=> (double(iou) > thres), so the inner loop stays in float.
float float_threshold(double thres) {
    float t = static_cast<float>(thres);
    if (static_cast<double>(t) > thres) t = std::nextafter(t, -std::numeric_limits<float>::infinity());
    return t;
}

struct Keyed {
    uint64_t key;
    int64_t pos;
};

// Stable LSD radix sort by key, 8 bits a pass; a pass is skipped when all keys share that byte (class ids
// in [0, 256) need one pass).
void radix_sort(std::vector<Keyed>& items, std::vector<Keyed>& scratch) {
    const size_t n = items.size();
    std::array<std::array<size_t, 256>, 8> count{};
    for (const Keyed& it : items)
        for (int b = 0; b < 8; ++b) ++count[b][(it.key >> (8 * b)) & 0xff];
    scratch.resize(n);
    for (int b = 0; b < 8; ++b) {
        auto& c = count[b];
        if (n == 0 || c[(items[0].key >> (8 * b)) & 0xff] == n) continue;
        size_t sum = 0;
        for (size_t& v : c) sum += std::exchange(v, sum);
        for (const Keyed& it : items) scratch[c[(it.key >> (8 * b)) & 0xff]++] = it;
        items.swap(scratch);
    }
}

// Ascending key order = descending score order (-0 and +0 tie, as in a comparison sort).
uint64_t descending_key(float score) {
    uint32_t u;
    const float s = score + 0.f;  // -0 -> +0
    std::memcpy(&u, &s, sizeof u);
    const uint32_t ascending = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~ascending;
}

// Greedy NMS over one group of boxes already in descending score order. Appends the group positions kept
// (at most `limit` when limit >= 0).
void greedy_group(const std::vector<float>& x1, const std::vector<float>& y1, const std::vector<float>& x2,
                  const std::vector<float>& y2, float thres, int64_t limit, std::vector<int64_t>& kept) {
    const int64_t m = static_cast<int64_t>(x1.size());
    std::vector<float> area(m);
    for (int64_t i = 0; i < m; ++i) area[i] = (x2[i] - x1[i]) * (y2[i] - y1[i]);
    std::vector<uint8_t> removed(m, 0);
    int64_t count = 0;
    for (int64_t i = 0; i < m; ++i) {
        if (removed[i]) continue;
        kept.push_back(i);
        if (++count == limit) return;
        const float ax1 = x1[i], ay1 = y1[i], ax2 = x2[i], ay2 = y2[i], aa = area[i];
        for (int64_t j = i + 1; j < m; ++j) {
            const float w = std::max(0.f, std::min(ax2, x2[j]) - std::max(ax1, x1[j]));
            const float h = std::max(0.f, std::min(ay2, y2[j]) - std::max(ay1, y1[j]));
            const float inter = w * h;
            const float iou = inter / (aa + area[j] - inter);
            removed[j] |= static_cast<uint8_t>(iou > thres);
        }
    }
}

}  // namespace

std::vector<int64_t> nms(const float* boxes, int64_t box_stride, const float* scores, int64_t score_stride,
                         const int64_t* classes, int64_t n, const NmsParams& params) {
    // Rank: descending score, stable; NaN scores and unusable boxes dropped.
    std::vector<Keyed> order, scratch;
    order.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const float s = scores[i * score_stride];
        const float* b = boxes + i * box_stride;
        if (!std::isnan(s) && usable_box(b[0], b[1], b[2], b[3])) order.push_back({descending_key(s), i});
    }
    radix_sort(order, scratch);
    if (params.max_nms >= 0 && static_cast<int64_t>(order.size()) > params.max_nms) order.resize(params.max_nms);
    const int64_t m = static_cast<int64_t>(order.size());

    // Group ranks by class (stable, so each group stays in score order); agnostic: one group.
    std::vector<Keyed> ranks(static_cast<size_t>(m));
    for (int64_t r = 0; r < m; ++r)
        ranks[r] = {params.agnostic ? 0 : static_cast<uint64_t>(classes[order[r].pos]), r};
    radix_sort(ranks, scratch);

    const float thres = float_threshold(params.iou_thres);
    std::vector<int64_t> kept_ranks, kept_in_group;
    std::vector<float> x1, y1, x2, y2;
    for (int64_t g0 = 0; g0 < m;) {
        int64_t g1 = g0 + 1;
        while (g1 < m && ranks[g1].key == ranks[g0].key) ++g1;
        x1.clear(), y1.clear(), x2.clear(), y2.clear();
        for (int64_t k = g0; k < g1; ++k) {
            const float* b = boxes + order[ranks[k].pos].pos * box_stride;
            x1.push_back(b[0]), y1.push_back(b[1]), x2.push_back(b[2]), y2.push_back(b[3]);
        }
        kept_in_group.clear();
        greedy_group(x1, y1, x2, y2, thres, params.max_det, kept_in_group);
        for (int64_t k : kept_in_group) kept_ranks.push_back(ranks[g0 + k].pos);
        g0 = g1;
    }
    std::sort(kept_ranks.begin(), kept_ranks.end());
    if (params.max_det >= 0 && static_cast<int64_t>(kept_ranks.size()) > params.max_det)
        kept_ranks.resize(params.max_det);
    std::vector<int64_t> out(kept_ranks.size());
    for (size_t k = 0; k < kept_ranks.size(); ++k) out[k] = order[kept_ranks[k]].pos;
    return out;
}

}  // namespace ascend_slim
