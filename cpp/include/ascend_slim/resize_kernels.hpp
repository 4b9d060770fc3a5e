// Row kernels of the letterbox resize, bit-compatible with OpenCV's INTER_LINEAR for 8-bit images: AVX2+FMA
// versions on x86-64 CPUs that have them, portable scalar versions otherwise (identical results).
#pragma once

#include <cstdint>
#include <vector>

namespace ascend_slim {

// Splits n interleaved 3-channel pixels into three planes.
void deinterleave3(const uint8_t* row, int n, uint8_t* p0, uint8_t* p1, uint8_t* p2);

// The horizontal pass of one plane: out[x] = (p[i0[x]] * c0[x] + p[i1[x]] * c1[x]) >> 4 (OpenCV keeps the
// full fixed-point sum, and its vertical pass only ever uses it shifted right by 4). For the SIMD kernel
// the outputs are grouped into blocks of up to 8 whose source pixels lie in one 16-byte window.
class HorizontalResampler {
public:
    HorizontalResampler(std::vector<int> i0, std::vector<int> i1, std::vector<int16_t> c0, std::vector<int16_t> c1);
    // `plane` must be readable 16 bytes past its last pixel and `out` writable 8 values past the last output.
    void operator()(const uint8_t* plane, int16_t* out) const;
    int size() const { return static_cast<int>(i0_.size()); }

private:
    std::vector<int> i0_, i1_;
    std::vector<int16_t> c0_, c1_;
    std::vector<int32_t> block_base_, block_count_;  // window start and outputs of each block
    std::vector<uint8_t> block_shuffle_;             // 32 bytes a block: (s0, 0, s1, 0) per output
    std::vector<int16_t> block_coef_;                // 16 values a block: (c0, c1) per output
};

// Vertical blend of two horizontally resized rows with the rounding of OpenCV's SIMD VResizeLinear for 8-bit
// images: 16x16->high-16 products, then (sum + 2) >> 2, saturated to 0..255.
void blend_rows(const int16_t* r0, const int16_t* r1, int16_t w0, int16_t w1, int n, uint8_t* out);

// out[i] = float(in[i]) / 255, correctly rounded.
void unit_float(const uint8_t* in, int n, float* out);

}  // namespace ascend_slim
