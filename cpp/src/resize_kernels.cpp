#include "ascend_slim/resize_kernels.hpp"

#include <algorithm>
#include <utility>

#include "ascend_slim/simd.hpp"

namespace ascend_slim {

namespace {

#ifdef ASCEND_SLIM_AVX2
// 16 pixels a step: the bytes of each channel gathered from three 16-byte loads by byte shuffles.
ASCEND_SLIM_AVX2_TARGET int deinterleave3_avx2(const uint8_t* row, int n, uint8_t* p0, uint8_t* p1, uint8_t* p2) {
    // shuffle[c][k]: the bytes of channel c found in the k-th 16-byte load (-1: none).
    alignas(16) static const int8_t shuffle[3][3][16] = {
        {{0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13}},
        {{1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14}},
        {{2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15}}};
    uint8_t* planes[3] = {p0, p1, p2};
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        const __m128i v[3] = {_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 3 * x)),
                              _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 3 * x + 16)),
                              _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 3 * x + 32))};
        for (int c = 0; c < 3; ++c) {
            __m128i out = _mm_setzero_si128();
            for (int k = 0; k < 3; ++k)
                out = _mm_or_si128(out, _mm_shuffle_epi8(v[k], _mm_load_si128(
                                                                   reinterpret_cast<const __m128i*>(shuffle[c][k]))));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(planes[c] + x), out);
        }
    }
    return x;
}

// One block of up to 8 outputs a step: a 16-byte source window in both lanes, a byte shuffle into
// (s0, s1) int16 pairs, a multiply-add with (c0, c1), >> 4, packed to int16.
ASCEND_SLIM_AVX2_TARGET void resample_avx2(const uint8_t* plane, const int32_t* base, const int32_t* count,
                                           const uint8_t* shuffle, const int16_t* coef, size_t blocks,
                                           int16_t* out) {
    for (size_t b = 0; b < blocks; ++b) {
        const __m256i window = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(plane + base[b])));
        const __m256i pairs = _mm256_shuffle_epi8(window, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(shuffle + 32 * b)));
        const __m256i sums = _mm256_srai_epi32(
            _mm256_madd_epi16(pairs, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(coef + 16 * b))), 4);
        const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), packed);
        out += count[b];
    }
}

ASCEND_SLIM_AVX2_TARGET inline __m256i blend16_avx2(const int16_t* r0, const int16_t* r1, __m256i w0, __m256i w1) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1));
    const __m256i sum = _mm256_adds_epi16(_mm256_mulhi_epi16(a, w0), _mm256_mulhi_epi16(b, w1));
    return _mm256_srai_epi16(_mm256_adds_epi16(sum, _mm256_set1_epi16(2)), 2);
}

ASCEND_SLIM_AVX2_TARGET int blend_rows_avx2(const int16_t* r0, const int16_t* r1, int16_t w0, int16_t w1, int n,
                                            uint8_t* out) {
    const __m256i b0 = _mm256_set1_epi16(w0), b1 = _mm256_set1_epi16(w1);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i packed = _mm256_packus_epi16(blend16_avx2(r0 + i, r1 + i, b0, b1),
                                                   blend16_avx2(r0 + i + 16, r1 + i + 16, b0, b1));  // a0 b0 a1 b1
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(packed, 0xd8));
    }
    return i;
}

// Exact v / 255: the product with 1/255 refined by one FMA residual step (checked for all 256 values).
ASCEND_SLIM_AVX2_TARGET int unit_float_avx2(const uint8_t* in, int n, float* out) {
    const __m256 inv = _mm256_set1_ps(1.f / 255.f), k = _mm256_set1_ps(255.f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i));
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
        const __m256 q = _mm256_mul_ps(v, inv);
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(_mm256_fnmadd_ps(q, k, v), inv, q));
    }
    return i;
}
#endif

}  // namespace

void deinterleave3(const uint8_t* row, int n, uint8_t* p0, uint8_t* p1, uint8_t* p2) {
    int x = 0;
#ifdef ASCEND_SLIM_AVX2
    if (avx2_enabled()) x = deinterleave3_avx2(row, n, p0, p1, p2);
#endif
    for (; x < n; ++x) p0[x] = row[3 * x], p1[x] = row[3 * x + 1], p2[x] = row[3 * x + 2];
}

HorizontalResampler::HorizontalResampler(std::vector<int> i0, std::vector<int> i1, std::vector<int16_t> c0,
                                         std::vector<int16_t> c1)
    : i0_(std::move(i0)), i1_(std::move(i1)), c0_(std::move(c0)), c1_(std::move(c1)) {
    const int n = size();
    for (int x = 0; x < n;) {
        const int base = std::min(i0_[x], i1_[x]);
        int k = 0;
        while (k < 8 && x + k < n && std::min(i0_[x + k], i1_[x + k]) >= base &&
               std::max(i0_[x + k], i1_[x + k]) < base + 16)
            ++k;
        block_base_.push_back(base);
        block_count_.push_back(k);
        for (int j = 0; j < 8; ++j) {
            const bool used = j < k;
            const uint8_t s0 = used ? static_cast<uint8_t>(i0_[x + j] - base) : 0x80;
            const uint8_t s1 = used ? static_cast<uint8_t>(i1_[x + j] - base) : 0x80;
            block_shuffle_.insert(block_shuffle_.end(), {s0, 0x80, s1, 0x80});
            block_coef_.insert(block_coef_.end(), {used ? c0_[x + j] : int16_t{0}, used ? c1_[x + j] : int16_t{0}});
        }
        x += k;
    }
}

void HorizontalResampler::operator()(const uint8_t* plane, int16_t* out) const {
#ifdef ASCEND_SLIM_AVX2
    if (avx2_enabled()) {
        resample_avx2(plane, block_base_.data(), block_count_.data(), block_shuffle_.data(), block_coef_.data(),
                      block_base_.size(), out);
        return;
    }
#endif
    for (int x = 0; x < size(); ++x)
        out[x] = static_cast<int16_t>((plane[i0_[x]] * c0_[x] + plane[i1_[x]] * c1_[x]) >> 4);
}

void blend_rows(const int16_t* r0, const int16_t* r1, int16_t w0, int16_t w1, int n, uint8_t* out) {
    int i = 0;
#ifdef ASCEND_SLIM_AVX2
    if (avx2_enabled()) i = blend_rows_avx2(r0, r1, w0, w1, n, out);
#endif
    for (; i < n; ++i) {
        const int32_t v = static_cast<int16_t>((r0[i] * w0) >> 16) + static_cast<int16_t>((r1[i] * w1) >> 16);
        out[i] = static_cast<uint8_t>(std::clamp((v + 2) >> 2, 0, 255));
    }
}

void unit_float(const uint8_t* in, int n, float* out) {
    int i = 0;
#ifdef ASCEND_SLIM_AVX2
    if (avx2_enabled()) i = unit_float_avx2(in, n, out);
#endif
    for (; i < n; ++i) out[i] = static_cast<float>(in[i]) / 255.f;
}

}  // namespace ascend_slim
