#include "ascend_slim/letterbox.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ascend_slim/half.hpp"

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
    std::vector<int32_t> c0, c1;  // their fixed-point weights
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

// One source row resized horizontally: 3 interleaved channels, values scaled by kCoefScale.
void resize_row_h(const uint8_t* src, const Taps& tx, int n, int32_t* out) {
    for (int x = 0; x < n; ++x) {
        const uint8_t* a = src + 3 * tx.i0[x];
        const uint8_t* b = src + 3 * tx.i1[x];
        const int32_t w0 = tx.c0[x], w1 = tx.c1[x];
        out[3 * x] = a[0] * w0 + b[0] * w1;
        out[3 * x + 1] = a[1] * w0 + b[1] * w1;
        out[3 * x + 2] = a[2] * w0 + b[2] * w1;
    }
}

// Vertical blend of two horizontally resized rows, with the rounding of OpenCV's SIMD VResizeLinear for
// 8-bit images (the path cv::resize takes for almost every pixel).
void resize_row_v(const int32_t* r0, const int32_t* r1, int32_t w0, int32_t w1, int n, uint8_t* out) {
    for (int i = 0; i < n; ++i) {
        const int32_t v = ((((r0[i] >> 4) * w0) >> 16) + (((r1[i] >> 4) * w1) >> 16) + 2) >> 2;
        out[i] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
}

// Writes BGR uint8 lines into the destination canvas with the requested channel order, layout and dtype.
template <typename T>
class CanvasWriter {
public:
    CanvasWriter(const OutputFormat& fmt, const LetterboxGeometry& g, void* dst)
        : dst_(static_cast<T*>(dst)), w_(g.out_w), plane_(static_cast<size_t>(g.out_h) * g.out_w),
          chw_(fmt.layout == Layout::CHW), first_(fmt.rgb ? 2 : 0) {
        for (int v = 0; v < 256; ++v) lut_[v] = convert(v);
    }

    void put_line(int y, const uint8_t* line) const {
        const int f = first_, l = 2 - first_;
        if (chw_) {
            T* c0 = dst_ + static_cast<size_t>(y) * w_;
            T* c1 = c0 + plane_;
            T* c2 = c1 + plane_;
            for (int x = 0; x < w_; ++x) {
                c0[x] = lut_[line[3 * x + f]];
                c1[x] = lut_[line[3 * x + 1]];
                c2[x] = lut_[line[3 * x + l]];
            }
        } else {
            T* p = dst_ + static_cast<size_t>(y) * w_ * 3;
            for (int x = 0; x < w_; ++x) {
                p[3 * x] = lut_[line[3 * x + f]];
                p[3 * x + 1] = lut_[line[3 * x + 1]];
                p[3 * x + 2] = lut_[line[3 * x + l]];
            }
        }
    }

private:
    static T convert(int v);
    T* dst_;
    int w_;
    size_t plane_;
    bool chw_;
    int first_;
    T lut_[256];
};

template <>
uint8_t CanvasWriter<uint8_t>::convert(int v) { return static_cast<uint8_t>(v); }
template <>
float CanvasWriter<float>::convert(int v) { return static_cast<float>(v) / 255.f; }
template <>
uint16_t CanvasWriter<uint16_t>::convert(int v) { return float_to_half(static_cast<float>(v) / 255.f); }

template <typename T>
void letterbox_typed(const uint8_t* src, const LetterboxGeometry& g, const std::array<uint8_t, 3>& color,
                     const OutputFormat& fmt, void* dst) {
    const CanvasWriter<T> writer(fmt, g, dst);
    std::vector<uint8_t> line(static_cast<size_t>(g.out_w) * 3);
    for (int x = 0; x < g.out_w; ++x) std::memcpy(&line[3 * static_cast<size_t>(x)], color.data(), 3);
    for (int y = 0; y < g.pad_top; ++y) writer.put_line(y, line.data());
    for (int y = g.pad_top + g.new_h; y < g.out_h; ++y) writer.put_line(y, line.data());

    uint8_t* image_part = line.data() + 3 * static_cast<size_t>(g.pad_left);
    const size_t src_row = static_cast<size_t>(g.src_w) * 3, new_row = static_cast<size_t>(g.new_w) * 3;
    if (g.new_w == g.src_w && g.new_h == g.src_h) {  // no resize: cv::resize copies
        for (int y = 0; y < g.new_h; ++y) {
            std::memcpy(image_part, src + y * src_row, new_row);
            writer.put_line(g.pad_top + y, line.data());
        }
        return;
    }
    const Taps tx = make_taps(g.src_w, g.new_w, true), ty = make_taps(g.src_h, g.new_h, false);
    // Cache of the two most recent horizontally resized source rows.
    std::vector<int32_t> cache[2] = {std::vector<int32_t>(new_row), std::vector<int32_t>(new_row)};
    int tag[2] = {-1, -1};
    auto fetch = [&](int sy, int keep) -> const int32_t* {
        for (int k = 0; k < 2; ++k)
            if (tag[k] == sy) return cache[k].data();
        const int slot = tag[0] == keep ? 1 : 0;
        resize_row_h(src + sy * src_row, tx, g.new_w, cache[slot].data());
        tag[slot] = sy;
        return cache[slot].data();
    };
    for (int y = 0; y < g.new_h; ++y) {
        const int32_t* r0 = fetch(ty.i0[y], ty.i1[y]);
        const int32_t* r1 = fetch(ty.i1[y], ty.i0[y]);
        resize_row_v(r0, r1, ty.c0[y], ty.c1[y], static_cast<int>(new_row), image_part);
        writer.put_line(g.pad_top + y, line.data());
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
