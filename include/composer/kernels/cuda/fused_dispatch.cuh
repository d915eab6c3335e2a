#pragma once
/// \file
/// The dispatch layer of the fused CUDA batch transform: packing the stage parameters and the batch geometry into
/// the kernels' argument structs (with the shared host checks of `kernels/host_checks.hpp`), choosing the
/// instantiation for the input and output dtypes and the stage set, and launching the kernels of
/// `fused_image_agent.cuh`, or running every thread of their grids on the host. The packing takes tensors of any
/// device, so that a host program runs the transform's own decisions without a GPU
/// (tests/cuda/test_fused_cuda_host.cu).

#if !defined(__CUDACC__)
#error "composer/kernels/cuda/fused_dispatch.cuh holds CUDA code: include it only from a .cu file compiled by nvcc (the public header is composer/kernels/fused_batch_cuda.cuh)"
#else

#include <composer/core/argument_checks.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/kernels/cuda/fused_image_agent.cuh>
#include <composer/kernels/host_checks.hpp>
#include <composer/kernels/stage_types.hpp>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace composer::kernels::cuda::detail {

/// The name the CUDA transform's messages start with.
inline constexpr const char* kFn = "fused_batch_transform_cuda";

/// The MixUp part of the image kernel's arguments (m ∈ [0, 1], checked again here).
inline void set_mixup(ImageArgs& a, double mixing, const int64_t* perm) {
  const host::MixWeights weights = host::mix_weights(mixing, kFn);
  a.mix_perm = perm;
  a.mix_active = weights.active;
  a.keep = weights.keep;
  a.take = weights.take;
}

/// The CutMix part: the box, checked against the H×W image (Composer's x = rows, y = columns).
inline void set_cutmix(ImageArgs& a, const stage::BBox& box, int64_t h, int64_t w, const int64_t* perm) {
  stage::check_bbox(box, h, w, kFn);
  a.cut_perm = perm;
  a.cut_active = box.x2 > box.x1 && box.y2 > box.y1;
  a.box_h0 = static_cast<int32_t>(box.x1);
  a.box_h1 = static_cast<int32_t>(box.x2);
  a.box_w0 = static_cast<int32_t>(box.y1);
  a.box_w1 = static_cast<int32_t>(box.y2);
}

/// The CutOut part: every hole checked against the H×W image, the non-empty ones copied (at most kMaxHoles).
inline void set_cutout(ImageArgs& a, const std::vector<stage::CutoutHole>& holes, int64_t h, int64_t w) {
  host::check_holes(holes, h, w, kFn);
  int32_t count = 0;
  for (const stage::CutoutHole& hole : holes) {
    if (hole.y1 == hole.y2 || hole.x1 == hole.x2) continue;  // empty: cuts nothing
    if (count == kMaxHoles) {
      checks::fail(std::string(kFn) + " takes at most " + std::to_string(kMaxHoles) +
                   " non-empty CutOut holes per call, got more");
    }
    a.holes[count][0] = static_cast<int32_t>(hole.y1);
    a.holes[count][1] = static_cast<int32_t>(hole.x1);
    a.holes[count][2] = static_cast<int32_t>(hole.y2);
    a.holes[count][3] = static_cast<int32_t>(hole.x2);
    ++count;
  }
  a.num_holes = count;
}

/// The Normalize part: one finite mean and finite non-zero std per channel (at most kMaxChannels), kept as mean
/// and 1/std in float32.
inline void set_normalize(ImageArgs& a, const std::vector<double>& mean, const std::vector<double>& stddev,
                          int64_t channels) {
  host::check_normalize(mean, stddev, channels, kFn);
  if (channels > kMaxChannels) {
    checks::fail(std::string(kFn) + " Normalize takes at most " + std::to_string(kMaxChannels) + " channels, got " +
                 std::to_string(channels));
  }
  for (size_t ch = 0; ch < static_cast<size_t>(channels); ++ch) {
    const host::ChannelAffine affine = host::channel_affine(mean, stddev, ch);
    a.mean[ch] = affine.mean;
    a.inv_std[ch] = affine.inv_std;
  }
  a.channels = static_cast<uint32_t>(channels);
}

/// How the input batch lies in memory.
enum class InputLayout { nchw, channels_last, strided };

/// The geometry part for a non-empty [N, C, H, W] batch: the output is channels-last for channels-last input
/// and NCHW otherwise; strided input is read through its strides (elements); vector loads when C·H·W is a
/// multiple of kVec and both base addresses are aligned to kVec elements.
inline void set_geometry(ImageArgs& a, const std::array<int64_t, 4>& sizes, const std::array<int64_t, 4>& strides,
                         InputLayout layout, const void* in, int64_t in_elem_size, bool in_uint8, void* out,
                         int64_t out_elem_size) {
  const int64_t c = sizes[1];
  const int64_t h = sizes[2];
  const int64_t w = sizes[3];
  const int64_t sample = c * h * w;
  a.in = in;
  a.out = out;
  a.batch = sizes[0];
  a.sample_size = static_cast<uint32_t>(sample);
  a.chunks = static_cast<uint32_t>((sample + kVec - 1) / kVec);
  a.channels_last = layout == InputLayout::channels_last;
  a.extent0 = static_cast<uint32_t>(a.channels_last ? c : w);
  a.extent1 = static_cast<uint32_t>(a.channels_last ? w : h);
  a.div0 = DivMod(a.extent0);
  a.div1 = DivMod(a.extent1);
  a.scale = in_uint8 ? 1.0f / 255.0f : 1.0f;
  if (layout == InputLayout::strided) {
    a.mode = kLoadStrided;
    for (size_t d = 0; d < 4; ++d) a.in_stride[d] = strides[d];
  } else {
    a.mode = kLoadScalar;
    a.in_stride[0] = sample;
    const auto in_addr = reinterpret_cast<uintptr_t>(in);
    const auto out_addr = reinterpret_cast<uintptr_t>(out);
    const bool aligned = in_addr % static_cast<uintptr_t>(kVec * in_elem_size) == 0 &&
                         out_addr % static_cast<uintptr_t>(kVec * out_elem_size) == 0;
    if (aligned && sample % kVec == 0) a.mode = kLoadVector;
  }
}

/// How an [N, C, H, W] batch (on any device) lies in memory: NCHW-contiguous, channels-last-contiguous, or any
/// other strides.
inline InputLayout input_layout(const at::Tensor& x) {
  if (x.is_contiguous()) return InputLayout::nchw;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) return InputLayout::channels_last;
  return InputLayout::strided;
}

/// The memory format of the output for an input layout: channels-last for channels-last input, NCHW otherwise.
inline at::MemoryFormat output_format(InputLayout layout) {
  return layout == InputLayout::channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

/// The image kernel's stage bits for a stage pack.
template <class... Stages>
inline constexpr unsigned stage_mask_v = (0u | ... | stage_bit_v<Stages>);

/// The target kernel's stage bits for a transform's stage bits: MixUp and CutMix (smoothing is a parameter).
constexpr unsigned target_mask(unsigned mask) { return mask & (kMixUpBit | kCutMixBit); }

/// The image kernel's arguments for the batch `x` written to `out`, packed from the stage parameters: each pixel
/// stage's parameters (checked against the H×W image), then the geometry and the load mode (vector, scalar or
/// strided) from the shapes, strides and addresses of `x` and `out`. `mix_perm` and `cut_perm` are the stages'
/// indices as int64, in the memory the kernel will read them from. The transform calls it with CUDA tensors; it
/// works on tensors of any device, so that host-side tests run the kernel's own packing. MixUp's m must already
/// be checked to lie in [0, 1].
/// \throws std::invalid_argument for a box, hole or normalisation constants that do not fit the batch.
template <class... Stages>
ImageArgs plan_image_args(const StageParameters<Stages...>& stages, const at::Tensor& x, const at::Tensor& out,
                          InputLayout layout, const int64_t* mix_perm, const int64_t* cut_perm) {
  using Params = StageParameters<Stages...>;
  const int64_t h = x.size(2);
  const int64_t w = x.size(3);
  ImageArgs a;
  if constexpr (Params::template has<stage::MixUp>) {
    set_mixup(a, stages.template get<stage::MixUp>().mixing, mix_perm);
  }
  if constexpr (Params::template has<stage::CutMix>) {
    set_cutmix(a, stages.template get<stage::CutMix>().box, h, w, cut_perm);
  }
  if constexpr (Params::template has<stage::CutOut>) set_cutout(a, stages.template get<stage::CutOut>().holes, h, w);
  if constexpr (Params::template has<stage::Normalize>) {
    const stage::Normalize& nm = stages.template get<stage::Normalize>();
    set_normalize(a, nm.mean, nm.stddev, x.size(1));
  }
  if (x.numel() == 0) return a;
  const std::array<int64_t, 4> sizes = {x.size(0), x.size(1), h, w};
  const std::array<int64_t, 4> strides = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  set_geometry(a, sizes, strides, layout, x.data_ptr(), static_cast<int64_t>(x.element_size()),
               x.scalar_type() == at::kByte, out.data_ptr(), static_cast<int64_t>(out.element_size()));
  return a;
}

/// The target kernel's arguments for `n` labels (int64, in the memory the kernel reads) and `num_classes`
/// classes, written to `out` (n·num_classes floats), packed from the stage parameters: MixUp's weights, CutMix's
/// target weight 1 − |box|/(H·W) for the image size `image_height` × `image_width` (which must be known, i.e.
/// positive, with CutMix), and LabelSmoothing's (1 − s, s/K). Works with memory of any device, as
/// plan_image_args. MixUp's m must already be checked to lie in [0, 1].
/// \throws std::invalid_argument for a CutMix stage without a known image size or with a box outside it, or a
///         smoothing outside [0, 1].
template <class... Stages>
TargetArgs plan_target_args(const StageParameters<Stages...>& stages, const int64_t* labels, int64_t n,
                            int64_t num_classes, const int64_t* mix_perm, const int64_t* cut_perm,
                            int64_t image_height, int64_t image_width, float* out) {
  using Params = StageParameters<Stages...>;
  TargetArgs a;
  a.labels = labels;
  if constexpr (Params::template has<stage::MixUp>) {
    const host::MixWeights weights = host::mix_weights(stages.template get<stage::MixUp>().mixing, kFn);
    a.mix_perm = mix_perm;
    a.keep = weights.keep;
    a.take = weights.take;
  }
  if constexpr (Params::template has<stage::CutMix>) {
    a.area = host::cutmix_target_area(stages.template get<stage::CutMix>(), image_height, image_width, kFn);
    a.cut_perm = cut_perm;
  }
  host::TargetSmoothing smoothing;
  if constexpr (Params::template has<stage::LabelSmoothing>) {
    smoothing = host::target_smoothing(stages.template get<stage::LabelSmoothing>().smoothing, num_classes, kFn);
  }
  a.on_scale = smoothing.on_scale;
  a.off = smoothing.off;
  a.batch = n;
  a.classes = num_classes;
  a.out = out;
  return a;
}

/// The image kernel's launch grid: x over the chunks of one image, y over the images, each capped (the kernel's
/// grid-stride loops cover the rest); blocks of kThreads threads.
inline dim3 image_grid(const ImageArgs& a) {
  const int64_t blocks_x = (static_cast<int64_t>(a.chunks) + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(std::min<int64_t>(blocks_x, int64_t{1} << 20)),
              static_cast<unsigned>(std::min<int64_t>(a.batch, 65535)));
}

/// Runs every thread of the image kernel's grid (image_grid) one after another on the host, reading the
/// normalisation constants from the arguments: the kernel's own code over CPU memory, for tests without a GPU.
template <class In, class Out, unsigned kMask>
void run_image_on_host(const ImageArgs& a) {
  const dim3 grid = image_grid(a);
  for (uint32_t by = 0; by < grid.y; ++by) {
    for (uint32_t bx = 0; bx < grid.x; ++bx) {
      for (uint32_t t = 0; t < static_cast<uint32_t>(kThreads); ++t) {
        image_thread<In, Out, kMask>(a, a.mean, a.inv_std, bx, by, grid.x, grid.y, kThreads, t);
      }
    }
  }
}

/// The target kernel's launch: blocks of kTargetThreads threads, at most kMaxTargetBlocks of them (a grid-stride
/// loop covers the rest); 0 blocks for an empty output.
inline constexpr int kTargetThreads = 256;
inline constexpr int64_t kMaxTargetBlocks = 4096;
inline unsigned target_blocks(const TargetArgs& a) {
  const int64_t total = a.batch * a.classes;
  return static_cast<unsigned>(std::min<int64_t>((total + kTargetThreads - 1) / kTargetThreads, kMaxTargetBlocks));
}

/// Runs every thread of the target kernel's grid (target_blocks) one after another on the host, for tests
/// without a GPU.
template <unsigned kMask>
void run_targets_on_host(const TargetArgs& a) {
  const unsigned blocks = target_blocks(a);
  const int64_t step = static_cast<int64_t>(blocks) * kTargetThreads;
  for (int64_t thread = 0; thread < step; ++thread) target_thread<kMask>(a, thread, step);
}

/// The number of image-kernel launches made by this program so far (every FusedBatchTransform, every thread).
inline std::atomic<int64_t>& image_launch_counter() {
  static std::atomic<int64_t> launches{0};
  return launches;
}

/// Launches the image kernel instantiated for (In, Out, kMask) on `stream` and counts the launch.
template <class In, class Out, unsigned kMask>
void launch_image(const ImageArgs& a, cudaStream_t stream) {
  fused_image_kernel<In, Out, kMask><<<image_grid(a), kThreads, 0, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  image_launch_counter().fetch_add(1, std::memory_order_relaxed);
}

/// Calls `f.template operator()<In, Out>()` with the element types of an image kernel's input and output dtypes
/// (input uint8, float32, float16 or bfloat16; output float32, float16 or bfloat16).
/// \throws std::invalid_argument for any other dtype.
template <class F>
void with_image_types(at::ScalarType in, at::ScalarType out, F&& f) {
  auto with_out = [&]<class In>() {
    switch (out) {
      case at::kFloat: f.template operator()<In, float>(); break;
      case at::kHalf: f.template operator()<In, c10::Half>(); break;
      case at::kBFloat16: f.template operator()<In, c10::BFloat16>(); break;
      default: checks::fail(std::string(kFn) + " has no kernel for output dtype " + std::string(c10::toString(out)));
    }
  };
  switch (in) {
    case at::kFloat: with_out.template operator()<float>(); break;
    case at::kHalf: with_out.template operator()<c10::Half>(); break;
    case at::kBFloat16: with_out.template operator()<c10::BFloat16>(); break;
    case at::kByte: with_out.template operator()<uint8_t>(); break;
    default: checks::fail(std::string(kFn) + " has no kernel for input dtype " + std::string(c10::toString(in)));
  }
}

/// Launches the image kernel instantiated for (input dtype, output dtype, the transform's pixel stages).
template <unsigned kMask>
void dispatch_image(const ImageArgs& a, at::ScalarType in, at::ScalarType out, cudaStream_t stream) {
  with_image_types(in, out, [&]<class In, class Out>() { launch_image<In, Out, kMask>(a, stream); });
}

/// The host-side counterpart of dispatch_image: the same instantiation, run by run_image_on_host.
template <unsigned kMask>
void dispatch_image_on_host(const ImageArgs& a, at::ScalarType in, at::ScalarType out) {
  with_image_types(in, out, [&]<class In, class Out>() { run_image_on_host<In, Out, kMask>(a); });
}

/// Launches the target kernel for the stage bits kMask on `stream` (nothing for an empty output).
template <unsigned kMask>
void launch_targets(const TargetArgs& a, cudaStream_t stream) {
  const unsigned blocks = target_blocks(a);
  if (blocks == 0) return;
  fused_target_kernel<kMask><<<blocks, kTargetThreads, 0, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

/// Whether `t` is an input dtype of the image kernel: uint8, float32, float16 or bfloat16.
inline bool is_image_dtype(at::ScalarType t) {
  return t == at::kByte || t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

}  // namespace composer::kernels::cuda::detail

#endif  // __CUDACC__
