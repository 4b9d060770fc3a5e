// YOLOv5 letterbox: aspect-preserving bilinear resize (bit-compatible with OpenCV INTER_LINEAR on uint8)
// plus constant padding, fused with the channel order, layout and dtype conversion a model input needs.
#pragma once

#include <array>
#include <cstdint>

namespace ascend_slim {

struct LetterboxGeometry {
    int src_h = 0, src_w = 0;    // input image
    int new_h = 0, new_w = 0;    // resized image inside the canvas
    int out_h = 0, out_w = 0;    // canvas
    int pad_top = 0, pad_left = 0;
    double ratio = 1.0;          // new / src (the same on both axes)
};

// YOLOv5 `letterbox` geometry: r = min(dst_h/src_h, dst_w/src_w) (at most 1 unless scaleup), resized size
// round(src*r) (at least 1 pixel), padding split round(d-0.1) / round(d+0.1); auto_pad pads only up to the
// next multiple of `stride` instead of the full dst size.
LetterboxGeometry letterbox_geometry(int src_h, int src_w, int dst_h, int dst_w, bool auto_pad, bool scaleup,
                                     int stride);

enum class PixelType { U8, F16, F32 };  // F16/F32 hold value/255
enum class Layout { HWC, CHW };

struct OutputFormat {
    PixelType type = PixelType::F32;
    Layout layout = Layout::CHW;
    bool rgb = true;  // swap the BGR input to RGB
};

// Letterbox one C-contiguous HxWx3 uint8 BGR image into `dst` (out_h x out_w, `fmt`), padding with `color`
// (given in the input's channel order).
void letterbox_into(const uint8_t* src, const LetterboxGeometry& geo, const std::array<uint8_t, 3>& color,
                    const OutputFormat& fmt, void* dst);

}  // namespace ascend_slim
