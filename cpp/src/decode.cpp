#include "ascend_slim/decode.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "ascend_slim/half.hpp"
#include "ascend_slim/nms.hpp"
#include "ascend_slim/simd.hpp"

namespace ascend_slim {

namespace {

inline double sigmoid(double t) { return 1.0 / (1.0 + std::exp(-t)); }

// A float bound below logit(p): every t with sigmoid(t) > p has t > bound, so most values are rejected by
// one float comparison on the raw logit before any exp (the exact test follows in double). The margin
// (1e-4 relative) dwarfs the float rounding of p / (1 - p) and of logf (about 1e-7).
float logit_floor(double p) {
    if (!(p > 0.0)) return -std::numeric_limits<float>::infinity();
    if (p >= 1.0) return std::numeric_limits<float>::infinity();
    const float l = std::log(static_cast<float>(p / (1.0 - p)));  // underflow to 0 gives -inf: still a bound
    return l - 1e-4f * (1.f + std::fabs(l));
}

// Writes the positions i < n with v[i] > bound (NaN never passes) in ascending order; returns their count.
int64_t positions_above(const float* v, int64_t n, float bound, int64_t* pos) {
    int64_t i = 0, k = 0;
#ifdef ASCEND_SLIM_SSE2
    if (simd_enabled()) {
        const __m128 b = _mm_set1_ps(bound);
        for (; i + 4 <= n; i += 4)
            for (int m = _mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(v + i), b)); m; m &= m - 1)
                pos[k++] = i + __builtin_ctz(static_cast<unsigned>(m));
    }
#endif
    for (; i < n; ++i) {
        pos[k] = i;
        k += v[i] > bound;
    }
    return k;
}

// First position of the largest value, NaN ignored (0 when no value is above -inf).
int64_t argmax(const float* v, int64_t n) {
    float best = -std::numeric_limits<float>::infinity();
    int64_t i = 0;
#ifdef ASCEND_SLIM_SSE2
    if (simd_enabled() && n >= 4) {
        __m128 m = _mm_set1_ps(best);
        for (; i + 4 <= n; i += 4) m = _mm_max_ps(_mm_loadu_ps(v + i), m);  // a NaN lane keeps m
        m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
        m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
        best = _mm_cvtss_f32(m);
    }
#endif
    for (; i < n; ++i) best = v[i] > best ? v[i] : best;
    if (!(best > -std::numeric_limits<float>::infinity())) return 0;
    int64_t first = 0;
    while (!(v[first] == best)) ++first;
    return first;
}

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return half_to_float(p[i]); }

// Stores the corners as float; false when the box is not usable_box (a NaN input, beyond the float range, or
// a negative width or height from decoded rows).
inline bool set_corners(Box& b, double x1, double y1, double x2, double y2) {
    b.x1 = static_cast<float>(x1), b.y1 = static_cast<float>(y1);
    b.x2 = static_cast<float>(x2), b.y2 = static_cast<float>(y2);
    return usable_box(b.x1, b.y1, b.x2, b.y2);
}

// Scores beyond the float range (only from out-of-range decoded rows) are not candidates.
inline bool finite_score(double score) { return std::isfinite(static_cast<float>(score)); }

// Emits the candidates of one cell whose objectness `obj` passed. cls[c] is class c's raw value (a logit or
// a probability) and prob(v) its probability; values not above `bound` cannot pass and are skipped cheaply.
// make_box(Box&) fills the coordinates and returns false when they are not finite. `pos` has room for nc.
template <typename Prob, typename MakeBox>
void emit_classes(const float* cls, int64_t nc, double obj, float bound, const CandidateRule& rule, Prob&& prob,
                  MakeBox&& make_box, int64_t* pos, std::vector<Box>& out) {
    int64_t count = 0;
    if (rule.multi_label) {
        count = positions_above(cls, nc, bound, pos);
    } else {
        pos[0] = argmax(cls, nc);
        count = cls[pos[0]] > bound;
    }
    Box box{};
    bool have_box = false;
    for (int64_t k = 0; k < count; ++k) {
        const double score = obj * prob(cls[pos[k]]);
        if (!(score > rule.conf_thres) || !finite_score(score)) continue;
        if (!have_box) {
            if (!make_box(box)) return;
            have_box = true;
        }
        box.score = static_cast<float>(score);
        box.cls = static_cast<int32_t>(pos[k]);
        out.push_back(box);
    }
}

// A cell's class values as contiguous floats: in place for float32 [.., no] rows, else converted into `buf`.
template <typename T>
const float* class_values(const T* p, int64_t step, int64_t nc, float* buf) {
    if constexpr (std::is_same_v<T, float>)
        if (step == 1) return p;
    for (int64_t c = 0; c < nc; ++c) buf[c] = load(p, c * step);
    return buf;
}

template <typename T>
void decode_head(const RawHead& h, int64_t image, const CandidateRule& rule, std::vector<Box>& out) {
    const int64_t plane = h.ny * h.nx, nc = h.no - 5;
    const int64_t cell_step = h.cells_last ? h.no : 1, chan_step = h.cells_last ? 1 : plane;
    const float obj_floor = logit_floor(rule.obj_thres);
    std::vector<float> buf(nc);
    std::vector<int64_t> pos(nc);
    for (int64_t a = 0; a < h.na; ++a) {
        const T* anchor_base = static_cast<const T*>(h.data) + (image * h.na + a) * plane * h.no;
        const double aw = h.anchors[2 * a], ah = h.anchors[2 * a + 1];
        for (int64_t cell = 0; cell < plane; ++cell) {
            const T* p = anchor_base + cell * cell_step;
            const float t_obj = load(p, 4 * chan_step);
            if (!(t_obj > obj_floor)) continue;
            const double obj = sigmoid(t_obj);
            if (!(obj > rule.obj_thres)) continue;
            const double gx = static_cast<double>(cell % h.nx), gy = static_cast<double>(cell / h.nx);
            auto make_box = [&](Box& b) {
                const double sx = sigmoid(load(p, 0)), sy = sigmoid(load(p, chan_step));
                const double tw = 2.0 * sigmoid(load(p, 2 * chan_step));
                const double th = 2.0 * sigmoid(load(p, 3 * chan_step));
                const double cx = (2.0 * sx - 0.5 + gx) * h.stride, cy = (2.0 * sy - 0.5 + gy) * h.stride;
                const double w = tw * tw * aw, hh = th * th * ah;
                return set_corners(b, cx - 0.5 * w, cy - 0.5 * hh, cx + 0.5 * w, cy + 0.5 * hh);
            };
            const double q = rule.conf_thres / obj;  // the class probability must exceed q
            if (q >= 1.0) continue;
            emit_classes(class_values(p + 5 * chan_step, chan_step, nc, buf.data()), nc, obj, logit_floor(q), rule,
                         [](float v) { return sigmoid(v); }, make_box, pos.data(), out);
        }
    }
}

[[noreturn]] void not_a_probability(const char* what, double value, int64_t image, int64_t row) {
    std::ostringstream msg;
    msg << what << ' ' << value << " (image " << image << ", row " << row
        << ") is not a probability in [0, 1]: decoded rows hold sigmoid outputs";
    throw std::invalid_argument(msg.str());
}

// Rows whose objectness passes have every class score checked too; NaN is allowed (it never passes).
template <typename T>
void decode_rows_typed(const DecodedRows& rows, int64_t image, const CandidateRule& rule, std::vector<Box>& out) {
    const T* base = static_cast<const T*>(rows.data) + image * rows.count * rows.no;
    const int64_t nc = rows.no - 5;
    std::vector<float> buf(nc);
    std::vector<int64_t> pos(nc);
    for (int64_t k = 0; k < rows.count; ++k) {
        const T* p = base + k * rows.no;
        const double obj = load(p, 4);
        if (obj < 0.0 || obj > 1.0) not_a_probability("objectness", obj, image, k);
        if (!(obj > rule.obj_thres) || !(obj > 0.0)) continue;
        auto make_box = [&](Box& b) {
            const double x = load(p, 0), y = load(p, 1), w = load(p, 2), hh = load(p, 3);
            return set_corners(b, x - 0.5 * w, y - 0.5 * hh, x + 0.5 * w, y + 0.5 * hh);
        };
        const float* cls = class_values(p + 5, 1, nc, buf.data());
        for (int64_t c = 0; c < nc; ++c)
            if (cls[c] < 0.f || cls[c] > 1.f) not_a_probability("class score", cls[c], image, k);
        const double q = rule.conf_thres / obj;
        if (q >= 1.0) continue;
        const float bound = static_cast<float>(q * (1.0 - 1e-6));  // probabilities: no sigmoid
        emit_classes(cls, nc, obj, bound, rule,
                     [](float v) { return static_cast<double>(v); }, make_box, pos.data(), out);
    }
}

}  // namespace

std::vector<Box> decode_raw(const std::vector<RawHead>& heads, int64_t image, const CandidateRule& rule) {
    std::vector<Box> out;
    for (const RawHead& h : heads) {
        if (h.type == ElemType::F32)
            decode_head<float>(h, image, rule, out);
        else
            decode_head<uint16_t>(h, image, rule, out);
    }
    return out;
}

std::vector<Box> decode_rows(const DecodedRows& rows, int64_t image, const CandidateRule& rule) {
    std::vector<Box> out;
    if (rows.type == ElemType::F32)
        decode_rows_typed<float>(rows, image, rule, out);
    else
        decode_rows_typed<uint16_t>(rows, image, rule, out);
    return out;
}

}  // namespace ascend_slim
