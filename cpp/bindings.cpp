// pybind11 bindings of the C++ core (module ascend_slim._core). All argument checking happens here, so the
// C++ functions behind it can assume well-formed input; the one exception is the probability range of decoded
// rows, checked as the decode reads them (std::invalid_argument, turned into ValueError here). Every C++
// exception reaches Python as an exception (pybind11 translates the standard ones). Long calls release the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/numpy.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ascend_slim/decode.hpp"
#include "ascend_slim/letterbox.hpp"
#include "ascend_slim/nms.hpp"
#include "ascend_slim/postprocess.hpp"
#include "ascend_slim/simd.hpp"

namespace py = pybind11;
using namespace ascend_slim;

namespace {

[[noreturn]] void type_error(const std::string& msg) { throw py::type_error(msg); }
[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }

std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << '(';
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

bool has_dtype(const py::array& a, const char* name) { return a.dtype().equal(py::dtype(name)); }

// A C-contiguous view of a numpy array (non-contiguous input is copied once).
py::array contiguous(py::handle obj, const std::string& name) {
    if (!py::isinstance<py::array>(obj))
        type_error(name + ": expected a numpy array, got " + py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
    return py::array::ensure(obj, py::array::c_style);
}

// A finite double array of any numeric input (lists included), `what` names it in errors.
py::array_t<double> numbers(py::handle obj, const std::string& name) {
    auto arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
    if (!arr) type_error(name + ": expected numbers");
    for (py::ssize_t i = 0; i < arr.size(); ++i)
        if (!std::isfinite(arr.data()[i])) value_error(name + ": values must be finite");
    return arr;
}

void check_unit(double v, const char* name) {
    if (!(v >= 0.0 && v <= 1.0)) value_error(std::string(name) + ": must lie in [0, 1], got " + std::to_string(v));
}

int64_t cap(const std::optional<int64_t>& v, const char* name) {
    if (!v) return -1;
    if (*v < 1) value_error(std::string(name) + ": must be at least 1 (or None for no cap), got " + std::to_string(*v));
    return *v;
}

ElemType float_type(const py::array& a, const std::string& name) {
    if (has_dtype(a, "float32")) return ElemType::F32;
    if (has_dtype(a, "float16")) return ElemType::F16;
    type_error(name + ": expected a float32 or float16 array, got " + dtype_str(a));
}

// ---------------------------------------------------------------------------------------------------------
// heads / anchors / strides

struct Heads {
    std::vector<RawHead> heads;
    std::vector<py::array> owners;  // keeps the (possibly copied) arrays alive
    int64_t batch = 0;
};

Heads parse_heads(py::handle heads_obj, py::handle anchors_obj, py::handle strides_obj) {
    if (py::isinstance<py::array>(heads_obj) || py::isinstance<py::str>(heads_obj) ||
        !py::isinstance<py::sequence>(heads_obj))
        type_error("heads: expected a list of arrays (one per detection layer)");
    const auto seq = py::reinterpret_borrow<py::sequence>(heads_obj);
    const py::ssize_t nl = py::len(seq);
    if (nl == 0) value_error("heads: empty list");
    const auto anchors = numbers(anchors_obj, "anchors");
    if (anchors.ndim() != 3 || anchors.shape(0) != nl || anchors.shape(1) < 1 || anchors.shape(2) != 2)
        value_error("anchors: expected shape (nl=" + std::to_string(nl) + ", na, 2), got " + shape_str(anchors));
    for (py::ssize_t i = 0; i < anchors.size(); ++i)
        if (!(anchors.data()[i] > 0)) value_error("anchors: values must be positive");
    const auto strides = numbers(strides_obj, "strides");
    if (strides.ndim() != 1 || strides.shape(0) != nl)
        value_error("strides: expected " + std::to_string(nl) + " values, got shape " + shape_str(strides));
    const int64_t na = anchors.shape(1);

    Heads out;
    int64_t no = 0;
    for (py::ssize_t i = 0; i < nl; ++i) {
        const std::string name = "heads[" + std::to_string(i) + "]";
        py::array a = contiguous(seq[i], name);
        RawHead h;
        h.type = float_type(a, name);
        h.na = na;
        if (a.ndim() == 5) {
            h.cells_last = true;
            if (a.shape(1) != na)
                value_error(name + ": shape " + shape_str(a) + " has " + std::to_string(a.shape(1)) +
                            " anchors, anchors has " + std::to_string(na));
            h.ny = a.shape(2), h.nx = a.shape(3), h.no = a.shape(4);
        } else if (a.ndim() == 4) {
            h.cells_last = false;
            if (a.shape(1) % na != 0)
                value_error(name + ": channels " + std::to_string(a.shape(1)) + " are not a multiple of na=" +
                            std::to_string(na));
            h.ny = a.shape(2), h.nx = a.shape(3), h.no = a.shape(1) / na;
        } else {
            value_error(name + ": expected rank 5 [N, na, ny, nx, 5+nc] or rank 4 [N, na*(5+nc), ny, nx], got shape " +
                        shape_str(a));
        }
        h.batch = a.shape(0);
        if (a.size() == 0) value_error(name + ": empty array of shape " + shape_str(a));
        if (h.no < 6) value_error(name + ": needs 5 + nc >= 6 values per anchor, got " + std::to_string(h.no));
        if (i == 0) {
            out.batch = h.batch, no = h.no;
        } else if (h.batch != out.batch || h.no != no) {
            value_error(name + ": batch " + std::to_string(h.batch) + " and 5+nc " + std::to_string(h.no) +
                        " differ from heads[0] (" + std::to_string(out.batch) + ", " + std::to_string(no) + ")");
        }
        h.stride = strides.data()[i];
        if (!(h.stride > 0)) value_error("strides: values must be positive");
        h.anchors.assign(anchors.data() + i * na * 2, anchors.data() + (i + 1) * na * 2);
        h.data = a.data();
        out.heads.push_back(std::move(h));
        out.owners.push_back(std::move(a));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// postprocess settings

Mode parse_mode(const std::string& mode) {
    if (mode == "yolov5") return Mode::YOLOv5;
    if (mode == "mindx") return Mode::MindX;
    value_error("mode: expected 'yolov5' or 'mindx', got '" + mode + "'");
}

PostprocessParams make_params(double conf_thres, double iou_thres, std::optional<int64_t> max_det, bool multi_label,
                              bool agnostic, const py::object& classes, const std::string& mode,
                              std::optional<double> obj_thres) {
    check_unit(conf_thres, "conf_thres");
    check_unit(iou_thres, "iou_thres");
    PostprocessParams p;
    p.mode = parse_mode(mode);
    p.rule.conf_thres = conf_thres;
    p.rule.obj_thres = obj_thres.value_or(conf_thres);
    check_unit(p.rule.obj_thres, "obj_thres");
    p.rule.multi_label = multi_label;
    p.nms.iou_thres = iou_thres;
    p.nms.max_det = cap(max_det, "max_det");
    p.nms.agnostic = agnostic;
    if (!classes.is_none()) {
        if (py::isinstance<py::str>(classes) || !py::isinstance<py::iterable>(classes))
            type_error("classes: expected a sequence of class ids or None");
        p.filter_classes = true;
        for (py::handle c : classes) {
            try {
                p.classes.push_back(py::cast<int64_t>(c));
            } catch (const py::cast_error&) {
                type_error("classes: expected integer class ids, got " + py::repr(c).cast<std::string>());
            }
        }
    }
    return resolve_mode(p);
}

void check_threads(int64_t num_threads) {
    if (num_threads < 1) value_error("num_threads: must be at least 1, got " + std::to_string(num_threads));
}

py::array_t<float> boxes_to_array(const std::vector<Box>& boxes) {
    py::array_t<float> out({static_cast<py::ssize_t>(boxes.size()), static_cast<py::ssize_t>(6)});
    float* d = out.mutable_data();
    for (const Box& b : boxes) {
        d[0] = b.x1, d[1] = b.y1, d[2] = b.x2, d[3] = b.y2, d[4] = b.score, d[5] = static_cast<float>(b.cls);
        d += 6;
    }
    return out;
}

py::list to_list(const std::vector<std::vector<Box>>& per_image) {
    py::list out;
    for (const auto& boxes : per_image) out.append(boxes_to_array(boxes));
    return out;
}

// Decode (``decode(i)`` gives image i's candidates) + NMS for every image of a batch, without the GIL.
template <class Decode>
py::list select_per_image(int64_t batch, int64_t num_threads, const PostprocessParams& p, const Decode& decode) {
    check_threads(num_threads);
    std::vector<std::vector<Box>> result(batch);
    {
        py::gil_scoped_release release;
        parallel_for(batch, num_threads, [&](int64_t i) { result[i] = select_boxes(decode(i), p); });
    }
    return to_list(result);
}

// ---------------------------------------------------------------------------------------------------------
// functions

py::list py_decode(py::handle heads, py::handle anchors, py::handle strides, double conf_thres, bool multi_label,
                   const std::string& mode, std::optional<double> obj_thres) {
    const Heads h = parse_heads(heads, anchors, strides);
    const PostprocessParams p =
        make_params(conf_thres, 0.0, std::nullopt, multi_label, false, py::none(), mode, obj_thres);
    std::vector<std::vector<Box>> result(h.batch);
    {
        py::gil_scoped_release release;
        for (int64_t i = 0; i < h.batch; ++i) result[i] = decode_raw(h.heads, i, p.rule);
    }
    return to_list(result);
}

py::list py_postprocess(py::handle heads, py::handle anchors, py::handle strides, double conf_thres, double iou_thres,
                        std::optional<int64_t> max_det, bool multi_label, bool agnostic, const py::object& classes,
                        const std::string& mode, std::optional<double> obj_thres, int64_t num_threads) {
    const Heads h = parse_heads(heads, anchors, strides);
    const PostprocessParams p =
        make_params(conf_thres, iou_thres, max_det, multi_label, agnostic, classes, mode, obj_thres);
    return select_per_image(h.batch, num_threads, p, [&](int64_t i) { return decode_raw(h.heads, i, p.rule); });
}

py::list py_postprocess_decoded(py::handle pred_obj, double conf_thres, double iou_thres,
                                std::optional<int64_t> max_det, bool multi_label, bool agnostic,
                                const py::object& classes, const std::string& mode, std::optional<double> obj_thres,
                                int64_t num_threads) {
    const py::array pred = contiguous(pred_obj, "pred");
    DecodedRows rows;
    rows.type = float_type(pred, "pred");
    if (pred.ndim() != 3) value_error("pred: expected rank 3 [N, K, 5+nc], got shape " + shape_str(pred));
    if (pred.size() == 0) value_error("pred: empty array of shape " + shape_str(pred));
    rows.batch = pred.shape(0), rows.count = pred.shape(1), rows.no = pred.shape(2);
    if (rows.no < 6) value_error("pred: needs 5 + nc >= 6 values per row, got " + std::to_string(rows.no));
    rows.data = pred.data();
    const PostprocessParams p =
        make_params(conf_thres, iou_thres, max_det, multi_label, agnostic, classes, mode, obj_thres);
    try {
        return select_per_image(rows.batch, num_threads, p, [&](int64_t i) { return decode_rows(rows, i, p.rule); });
    } catch (const std::invalid_argument& e) {
        value_error(std::string("pred: ") + e.what() + "; raw logits go to postprocess()");
    }
}

// Class ids of an integer (or bool) array, or of a float array holding whole numbers small enough that
// distinct ids stay distinct in that float type (|id| <= 2^mantissa digits); anything else is refused
// rather than truncated or collided.
std::vector<int64_t> parse_class_ids(const py::array& cls) {
    const char kind = cls.dtype().kind();
    const size_t n = static_cast<size_t>(cls.size());
    std::vector<int64_t> ids(n);
    if (kind == 'u' && cls.itemsize() == 8) {
        const auto arr = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(cls);
        for (size_t i = 0; i < n; ++i) {
            if (arr.data()[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                value_error("classes: id " + std::to_string(arr.data()[i]) + " at index " + std::to_string(i) +
                            " does not fit in int64");
            ids[i] = static_cast<int64_t>(arr.data()[i]);
        }
    } else if (kind == 'b' || kind == 'i' || kind == 'u') {
        const auto arr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(cls);
        std::copy(arr.data(), arr.data() + n, ids.begin());
    } else if (kind == 'f' && cls.itemsize() <= 8) {
        const int digits = cls.itemsize() == 2 ? 11 : cls.itemsize() == 4 ? 24 : 53;
        const double limit = std::ldexp(1.0, digits);
        const auto arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(cls);
        for (size_t i = 0; i < n; ++i) {
            const double c = arr.data()[i];
            if (!(std::fabs(c) <= limit) || c != std::trunc(c))
                value_error("classes: " + dtype_str(cls) + " id " + py::repr(py::float_(c)).cast<std::string>() +
                            " at index " + std::to_string(i) + " is not a whole number within +-2^" +
                            std::to_string(digits) + " (pass an integer array)");
            ids[i] = static_cast<int64_t>(c);
        }
    } else {
        type_error("classes: expected an integer array (or float16/32/64 holding whole numbers), got " +
                   dtype_str(cls));
    }
    return ids;
}

py::array_t<int64_t> py_nms(py::handle boxes_obj, py::handle scores_obj, py::handle classes_obj, double iou_thres,
                            std::optional<int64_t> max_det, std::optional<int64_t> max_nms, bool agnostic) {
    const py::array boxes = contiguous(boxes_obj, "boxes");
    const py::array scores = contiguous(scores_obj, "scores");
    if (!has_dtype(boxes, "float32")) type_error("boxes: expected float32, got " + dtype_str(boxes));
    if (!has_dtype(scores, "float32")) type_error("scores: expected float32, got " + dtype_str(scores));
    if (boxes.ndim() != 2 || boxes.shape(1) != 4) value_error("boxes: expected shape (K, 4), got " + shape_str(boxes));
    const int64_t n = boxes.shape(0);
    if (scores.ndim() != 1 || scores.shape(0) != n)
        value_error("scores: expected shape (" + std::to_string(n) + ",), got " + shape_str(scores));
    const py::array cls_in = contiguous(classes_obj, "classes");
    if (cls_in.ndim() != 1 || cls_in.shape(0) != n)
        value_error("classes: expected shape (" + std::to_string(n) + ",), got " + shape_str(cls_in));
    const std::vector<int64_t> class_ids = parse_class_ids(cls_in);
    check_unit(iou_thres, "iou_thres");
    NmsParams params;
    params.iou_thres = iou_thres;
    params.max_det = cap(max_det, "max_det");
    params.max_nms = cap(max_nms, "max_nms");
    params.agnostic = agnostic;
    std::vector<int64_t> keep;
    {
        py::gil_scoped_release release;
        keep = nms(static_cast<const float*>(boxes.data()), 4, static_cast<const float*>(scores.data()), 1,
                   class_ids.data(), n, params);
    }
    py::array_t<int64_t> out(static_cast<py::ssize_t>(keep.size()));
    if (!keep.empty()) std::memcpy(out.mutable_data(), keep.data(), keep.size() * sizeof(int64_t));
    return out;
}

py::array_t<float> py_scale_boxes(py::handle dets_obj, double ratio, std::pair<double, double> pad,
                                  std::pair<int64_t, int64_t> orig_shape) {
    const py::array dets = contiguous(dets_obj, "dets");
    if (!has_dtype(dets, "float32")) type_error("dets: expected float32, got " + dtype_str(dets));
    if (dets.ndim() != 2 || dets.shape(1) != 6) value_error("dets: expected shape (K, 6), got " + shape_str(dets));
    if (!(ratio > 0 && std::isfinite(ratio))) value_error("ratio: must be positive and finite");
    if (!std::isfinite(pad.first) || !std::isfinite(pad.second)) value_error("pad: values must be finite");
    if (orig_shape.first < 1 || orig_shape.second < 1) value_error("orig_shape: height and width must be >= 1");
    py::array_t<float> out({dets.shape(0), static_cast<py::ssize_t>(6)});
    const auto* in = static_cast<const float*>(dets.data());
    for (py::ssize_t i = 0; i < dets.size(); ++i)
        if (!std::isfinite(in[i])) value_error("dets: values must be finite");
    if (dets.size()) std::memcpy(out.mutable_data(), in, dets.size() * sizeof(float));
    scale_boxes(out.mutable_data(), dets.shape(0), ratio, pad.first, pad.second, orig_shape.first, orig_shape.second);
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// letterbox / preprocess

struct ImageArg {
    py::array array;
    int h = 0, w = 0;
};

ImageArg parse_image(py::handle obj, const std::string& name) {
    ImageArg im{contiguous(obj, name)};
    if (!has_dtype(im.array, "uint8")) type_error(name + ": expected a uint8 image, got " + dtype_str(im.array));
    if (im.array.ndim() != 3 || im.array.shape(2) != 3)
        value_error(name + ": expected an HxWx3 BGR image, got shape " + shape_str(im.array));
    if (im.array.shape(0) < 1 || im.array.shape(1) < 1) value_error(name + ": empty image " + shape_str(im.array));
    if (im.array.shape(0) > (1 << 30) || im.array.shape(1) > (1 << 30)) value_error(name + ": image too large");
    im.h = static_cast<int>(im.array.shape(0)), im.w = static_cast<int>(im.array.shape(1));
    return im;
}

struct Canvas {
    int h, w, stride;
    bool auto_pad, scaleup;
    std::array<uint8_t, 3> color;
};

Canvas parse_canvas(std::pair<int, int> size, const std::vector<int>& color, bool auto_pad, bool scaleup, int stride) {
    if (size.first < 1 || size.second < 1)
        value_error("size: height and width must be >= 1, got (" + std::to_string(size.first) + ", " +
                    std::to_string(size.second) + ")");
    if (stride < 1) value_error("stride: must be >= 1, got " + std::to_string(stride));
    if (color.size() != 3) value_error("color: expected 3 values, got " + std::to_string(color.size()));
    Canvas c{size.first, size.second, stride, auto_pad, scaleup, {}};
    for (int k = 0; k < 3; ++k) {
        if (color[k] < 0 || color[k] > 255) value_error("color: values must lie in [0, 255]");
        c.color[k] = static_cast<uint8_t>(color[k]);
    }
    return c;
}

LetterboxGeometry geometry(const ImageArg& im, const Canvas& c) {
    return letterbox_geometry(im.h, im.w, c.h, c.w, c.auto_pad, c.scaleup, c.stride);
}

py::tuple py_letterbox(py::handle img, std::pair<int, int> size, const std::vector<int>& color, bool auto_pad,
                       bool scaleup, int stride) {
    const ImageArg im = parse_image(img, "img");
    const Canvas c = parse_canvas(size, color, auto_pad, scaleup, stride);
    const LetterboxGeometry g = geometry(im, c);
    py::array_t<uint8_t> out({g.out_h, g.out_w, 3});
    void* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        letterbox_into(static_cast<const uint8_t*>(im.array.data()), g, c.color,
                       OutputFormat{PixelType::U8, Layout::HWC, false}, dst);
    }
    return py::make_tuple(out, g.ratio, py::make_tuple(g.pad_left, g.pad_top));
}

py::tuple py_preprocess(py::handle images_obj, std::pair<int, int> size, const std::vector<int>& color,
                        bool auto_pad, bool scaleup, int stride, const std::string& dtype,
                        const std::string& layout) {
    if (py::isinstance<py::array>(images_obj) || !py::isinstance<py::sequence>(images_obj))
        type_error("images: expected a list of HxWx3 uint8 arrays");
    const auto seq = py::reinterpret_borrow<py::sequence>(images_obj);
    const py::ssize_t n = py::len(seq);
    if (n == 0) value_error("images: empty list");
    OutputFormat fmt;
    if (dtype == "float32") fmt.type = PixelType::F32;
    else if (dtype == "float16") fmt.type = PixelType::F16;
    else if (dtype == "uint8") fmt.type = PixelType::U8;
    else type_error("dtype: expected float32, float16 or uint8, got " + dtype);
    if (layout == "NCHW") fmt.layout = Layout::CHW;
    else if (layout == "NHWC") fmt.layout = Layout::HWC;
    else value_error("layout: expected 'NCHW' or 'NHWC', got '" + layout + "'");

    const Canvas c = parse_canvas(size, color, auto_pad, scaleup, stride);
    std::vector<ImageArg> images;
    std::vector<LetterboxGeometry> geos;
    for (py::ssize_t i = 0; i < n; ++i) {
        images.push_back(parse_image(seq[i], "images[" + std::to_string(i) + "]"));
        geos.push_back(geometry(images.back(), c));
        if (geos.back().out_h != geos[0].out_h || geos.back().out_w != geos[0].out_w)
            value_error("images: auto=True pads images to different shapes; use auto=False for a batch");
    }
    const py::ssize_t oh = geos[0].out_h, ow = geos[0].out_w;
    std::vector<py::ssize_t> shape = fmt.layout == Layout::CHW ? std::vector<py::ssize_t>{n, 3, oh, ow}
                                                              : std::vector<py::ssize_t>{n, oh, ow, 3};
    py::array out(py::dtype(dtype), shape);
    auto* dst = static_cast<uint8_t*>(out.mutable_data());
    const size_t image_bytes = static_cast<size_t>(3 * oh * ow) * out.itemsize();
    py::array_t<double> ratios(n);
    py::array_t<int64_t> pads({n, static_cast<py::ssize_t>(2)});
    for (py::ssize_t i = 0; i < n; ++i) {
        ratios.mutable_data()[i] = geos[i].ratio;
        pads.mutable_data()[2 * i] = geos[i].pad_left;
        pads.mutable_data()[2 * i + 1] = geos[i].pad_top;
    }
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i)
            letterbox_into(static_cast<const uint8_t*>(images[i].array.data()), geos[i], c.color, fmt,
                           dst + i * image_bytes);
    }
    return py::make_tuple(out, ratios, pads);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "ascend-slim C++ core: letterbox/preprocess, YOLOv5 decode, NMS, postprocess (see ascend_slim.core)";
    using namespace pybind11::literals;
    m.def("letterbox", &py_letterbox, "img"_a, py::kw_only(), "size"_a, "color"_a, "auto"_a, "scaleup"_a, "stride"_a);
    m.def("preprocess", &py_preprocess, "images"_a, py::kw_only(), "size"_a, "color"_a, "auto"_a, "scaleup"_a, "stride"_a,
          "dtype"_a, "layout"_a);
    m.def("decode", &py_decode, "heads"_a, py::kw_only(), "anchors"_a, "strides"_a, "conf_thres"_a,
          "multi_label"_a, "mode"_a,
          "obj_thres"_a);
    m.def("nms", &py_nms, "boxes"_a, py::kw_only(), "scores"_a, "classes"_a, "iou_thres"_a, "max_det"_a, "max_nms"_a,
          "agnostic"_a);
    m.def("postprocess", &py_postprocess, "heads"_a, py::kw_only(), "anchors"_a, "strides"_a, "conf_thres"_a,
          "iou_thres"_a,
          "max_det"_a, "multi_label"_a, "agnostic"_a, "classes"_a, "mode"_a, "obj_thres"_a, "num_threads"_a);
    m.def("postprocess_decoded", &py_postprocess_decoded, "pred"_a, py::kw_only(), "conf_thres"_a, "iou_thres"_a, "max_det"_a,
          "multi_label"_a, "agnostic"_a, "classes"_a, "mode"_a, "obj_thres"_a, "num_threads"_a);
    m.def("scale_boxes", &py_scale_boxes, "dets"_a, py::kw_only(), "ratio"_a, "pad"_a, "orig_shape"_a);
    // Testing aid: switches the SIMD kernels off (and on) to check the portable paths; returns the new state.
    m.def("_set_simd_enabled", [](bool on) {
        set_simd_enabled(on);
        return simd_enabled();
    }, "enabled"_a);
}
