#include "ascend_slim/letterbox.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ascend_slim/half.hpp"
#include "ascend_slim/resize_kernels.hpp"

namespace ascend_slim {

LetterboxGeometry letterbox_geometry(int src_h, int src_w, int dst_h, int dst_w, bool auto_pad, bool scaleup,
                                     int stride) {
    LetterboxGeometry g;
    g.src_h = src_h;
    g.src_w = src_w;
    double r = std::min(static_cast<double>(dst_h) / src_h, static_cast<double>(dst_w) / src_w);
    if (!scaleup) r = std::min(r, 1.0);
    g.ratio = r;
    // Python's round() is round-half-even, as nearbyint in the default rounding mode.
    g.new_w = std::max(1, static_cast<int>(std::nearbyint(src_w * r)));
    g.new_h = std::max(1, static_cast<int>(std::nearbyint(src_h * r)));
    int dw = std::max(0, dst_w - g.new_w), dh = std::max(0, dst_h - g.new_h);
    if (auto_pad) {
        dw %= stride;
        dh %= stride;
    }
    const double hw = dw / 2.0, hh = dh / 2.0;
    g.pad_left = static_cast<int>(std::nearbyint(hw - 0.1));
    g.pad_top = static_cast<int>(std::nearbyint(hh - 0.1));
    g.out_w = g.new_w + g.pad_left + static_cast<int>(std::nearbyint(hw + 0.1));
    g.out_h = g.new_h + g.pad_top + static_cast<int>(std::nearbyint(hh + 0.1));
    return g;
}

namespace {

// OpenCV's INTER_LINEAR fixed point: 11-bit coefficients, source position (d + 0.5) * src/dst - 0.5.
constexpr int kCoefScale = 1 << 11;

struct Taps {
    std::vector<int> i0, i1;      // the two source indices of each destination index
    std::vector<int16_t> c0, c1;  // their fixed-point weights
};

int16_t fixed_weight(float w) {
    const long v = std::lrint(w * static_cast<float>(kCoefScale));  // saturate_cast<short>(float)
    return static_cast<int16_t>(std::clamp<long>(v, std::numeric_limits<int16_t>::min(),
                                                 std::numeric_limits<int16_t>::max()));
}

// Horizontal taps clamp position and weight at the borders; vertical taps clamp only the row index
// (OpenCV resizeGeneric). Both orders are reproduced so results are bit-identical to cv::resize.
Taps make_taps(int src, int dst, bool clamp_weights) {
    Taps t;
    t.i0.resize(dst);
    t.i1.resize(dst);
    t.c0.resize(dst);
    t.c1.resize(dst);
    const double scale = 1.0 / (static_cast<double>(dst) / src);
    for (int d = 0; d < dst; ++d) {
        float f = static_cast<float>((d + 0.5) * scale - 0.5);
        int s = static_cast<int>(std::floor(f));
        f -= static_cast<float>(s);
        if (clamp_weights) {
            if (s < 0) f = 0.f, s = 0;
            if (s >= src - 1) f = 0.f, s = src - 1;
        }
        t.i0[d] = std::clamp(s, 0, src - 1);
        t.i1[d] = std::clamp(s + 1, 0, src - 1);
        t.c0[d] = fixed_weight(1.f - f);
        t.c1[d] = fixed_weight(f);
    }
    return t;
}

// Contiguous uint8 -> output type: a copy, the unit_float kernel, or a 256-entry binary16 table.
template <typename T>
struct Converter {
    void operator()(const uint8_t* in, int n, uint8_t* out) const { std::copy(in, in + n, out); }
};
template <>
struct Converter<float> {
    void operator()(const uint8_t* in, int n, float* out) const { unit_float(in, n, out); }
};
template <>
struct Converter<uint16_t> {
    uint16_t table[256];
    Converter() {
        for (int v = 0; v < 256; ++v) table[v] = float_to_half(static_cast<float>(v) / 255.f);
    }
    void operator()(const uint8_t* in, int n, uint16_t* out) const {
        for (int i = 0; i < n; ++i) out[i] = table[in[i]];
    }
};

// Writes canvas rows given as three planes in the input's (BGR) channel order.
template <typename T>
class CanvasWriter {
public:
    CanvasWriter(const OutputFormat& fmt, const LetterboxGeometry& g, void* dst)
        : dst_(static_cast<T*>(dst)), w_(g.out_w), plane_(static_cast<size_t>(g.out_h) * g.out_w),
          chw_(fmt.layout == Layout::CHW), rgb_(fmt.rgb), line_(3 * static_cast<size_t>(g.out_w)) {}

    void put(int y, const uint8_t* b, const uint8_t* g, const uint8_t* r) {
        const uint8_t* planes[3] = {rgb_ ? r : b, g, rgb_ ? b : r};
        if (chw_) {
            T* out = dst_ + static_cast<size_t>(y) * w_;
            for (int c = 0; c < 3; ++c) convert(planes[c], w_, out + c * plane_);
            return;
        }
        uint8_t* line = line_.data();
        for (int x = 0; x < w_; ++x)
            line[3 * x] = planes[0][x], line[3 * x + 1] = planes[1][x], line[3 * x + 2] = planes[2][x];
        convert(line, 3 * w_, dst_ + static_cast<size_t>(y) * w_ * 3);
    }

private:
    void convert(const uint8_t* in, int n, T* out) const { converter_(in, n, out); }

    T* dst_;
    int w_;
    size_t plane_;
    bool chw_, rgb_;
    std::vector<uint8_t> line_;
    Converter<T> converter_;
};

template <typename T>
void letterbox_typed(const uint8_t* src, const LetterboxGeometry& g, const std::array<uint8_t, 3>& color,
                     const OutputFormat& fmt, void* dst) {
    CanvasWriter<T> writer(fmt, g, dst);
    // One canvas row as three planes, the padding pre-filled; the image goes at pad_left in each plane.
    const size_t w = static_cast<size_t>(g.out_w);
    std::vector<uint8_t> row(3 * w);
    for (int c = 0; c < 3; ++c) std::fill(row.begin() + c * w, row.begin() + (c + 1) * w, color[c]);
    uint8_t* planes[3] = {row.data(), row.data() + w, row.data() + 2 * w};
    for (int y = 0; y < g.pad_top; ++y) writer.put(y, planes[0], planes[1], planes[2]);
    for (int y = g.pad_top + g.new_h; y < g.out_h; ++y) writer.put(y, planes[0], planes[1], planes[2]);
    uint8_t* image[3] = {planes[0] + g.pad_left, planes[1] + g.pad_left, planes[2] + g.pad_left};

    const size_t src_row = static_cast<size_t>(g.src_w) * 3;
    if (g.new_w == g.src_w && g.new_h == g.src_h) {  // no resize: cv::resize copies
        for (int y = 0; y < g.new_h; ++y) {
            deinterleave3(src + y * src_row, g.src_w, image[0], image[1], image[2]);
            writer.put(g.pad_top + y, planes[0], planes[1], planes[2]);
        }
        return;
    }
    const Taps tx = make_taps(g.src_w, g.new_w, true), ty = make_taps(g.src_h, g.new_h, false);
    const HorizontalResampler resample(tx.i0, tx.i1, tx.c0, tx.c1);
    // One source row as three planes (16 readable bytes of slack each for the SIMD window loads).
    const size_t src_plane = static_cast<size_t>(g.src_w) + 16;
    std::vector<uint8_t> split(3 * src_plane);
    // Cache of the two most recent horizontally resized source rows (three planes each, 8 values of slack).
    const size_t n = static_cast<size_t>(g.new_w) + 8;
    std::vector<int16_t> cache[2] = {std::vector<int16_t>(3 * n), std::vector<int16_t>(3 * n)};
    int tag[2] = {-1, -1};
    auto fetch = [&](int sy, int keep) -> const int16_t* {
        for (int k = 0; k < 2; ++k)
            if (tag[k] == sy) return cache[k].data();
        const int slot = tag[0] == keep ? 1 : 0;
        uint8_t* p = split.data();
        deinterleave3(src + sy * src_row, g.src_w, p, p + src_plane, p + 2 * src_plane);
        for (int c = 0; c < 3; ++c) resample(p + c * src_plane, cache[slot].data() + c * n);
        tag[slot] = sy;
        return cache[slot].data();
    };
    for (int y = 0; y < g.new_h; ++y) {
        const int16_t* r0 = fetch(ty.i0[y], ty.i1[y]);
        const int16_t* r1 = fetch(ty.i1[y], ty.i0[y]);
        for (int c = 0; c < 3; ++c)
            blend_rows(r0 + c * n, r1 + c * n, ty.c0[y], ty.c1[y], g.new_w, image[c]);
        writer.put(g.pad_top + y, planes[0], planes[1], planes[2]);
    }
}

}  // namespace

void letterbox_into(const uint8_t* src, const LetterboxGeometry& geo, const std::array<uint8_t, 3>& color,
                    const OutputFormat& fmt, void* dst) {
    switch (fmt.type) {
        case PixelType::U8: letterbox_typed<uint8_t>(src, geo, color, fmt, dst); break;
        case PixelType::F16: letterbox_typed<uint16_t>(src, geo, color, fmt, dst); break;
        case PixelType::F32: letterbox_typed<float>(src, geo, color, fmt, dst); break;
    }
}

}  // namespace ascend_slim
