#pragma once
/// \file
/// Anti-aliased downsampling layers (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again",
/// http://proceedings.mlr.press/v97/zhang19a.html): the low-pass filter `blur_2d`, `blurmax_pool2d`, and the
/// modules BlurPool puts into a model (`BlurConv2d`, `BlurMaxPool2d`) plus the stand-alone `BlurPool2d`.
/// Composer counterpart: `composer.algorithms.blurpool.blurpool_layers`.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include <composer/modules/conv_options.hpp>
#include <composer/surgery/surgical_module.hpp>

namespace composer::modules {

/// The default anti-aliasing filter, [1 2 1]ᵀ[1 2 1] / 16, as a [1, 1, 3, 3] float tensor. Composer
/// counterpart: `blurpool_layers._default_2d_filter`.
[[nodiscard]] inline at::Tensor default_blur_filter() {
  return at::tensor({1.f, 2.f, 1.f, 2.f, 4.f, 2.f, 1.f, 2.f, 1.f}).reshape({1, 1, 3, 3}) / 16.0;
}

namespace detail {
/// An `ExpandingArray` as a vector.
template <std::size_t D>
std::vector<std::int64_t> to_vector(const torch::ExpandingArray<D>& a) {
  return std::vector<std::int64_t>(a->begin(), a->end());
}

/// (h / 2, w / 2) for a filter of odd height h and width w: the padding that keeps the size at stride 1.
inline std::pair<std::int64_t, std::int64_t> same_padding(const at::Tensor& filter) {
  if (!filter.defined() || filter.dim() != 4)
    throw std::invalid_argument("composer: blur filter must be a 4-D tensor (C or 1, 1, kH, kW)");
  const std::int64_t h = filter.size(2), w = filter.size(3);
  if (h % 2 == 0) throw std::invalid_argument("composer: blur filter must have odd height, got " + std::to_string(h));
  if (w % 2 == 0) throw std::invalid_argument("composer: blur filter must have odd width, got " + std::to_string(w));
  return {h / 2, w / 2};
}
}  // namespace detail

/// Low-pass filters each channel of an NCHW `input` with `filter` (default: `default_blur_filter()`), zero-padded
/// by half the filter size and subsampled by `stride`: a depthwise convolution. With `channels` > 0 the filter
/// must already be [channels, 1, kH, kW]; with `channels` < 1 the channel count is read from `input`, a
/// [1, 1, kH, kW] filter is repeated over it, and an input smaller than the filter is returned unchanged.
/// Composer counterpart: `blurpool_layers.blur_2d(input, channels=-1, stride=1, filter=None)`.
/// \throws std::invalid_argument for an input that is not 4-D, a stride below 1 or a filter of even size.
[[nodiscard]] inline at::Tensor blur_2d(const at::Tensor& input, std::int64_t channels = -1,
                                        std::vector<std::int64_t> stride = {1, 1},
                                        std::optional<at::Tensor> filter = std::nullopt) {
  if (!input.defined() || input.dim() != 4)
    throw std::invalid_argument("composer: blur_2d input must be 4-D (N, C, H, W)");
  if (stride.size() == 1) stride.push_back(stride.front());
  if (stride.size() != 2 || stride[0] < 1 || stride[1] < 1)
    throw std::invalid_argument("composer: blur_2d stride must be one or two positive values");
  at::Tensor f = filter ? *filter : default_blur_filter();
  const auto [pad_h, pad_w] = detail::same_padding(f);
  if (channels < 1) {
    channels = input.size(1);
    if (f.size(0) == 1 && channels > 1) f = f.repeat({channels, 1, 1, 1});
    if (input.size(2) + 2 * pad_h < f.size(2) || input.size(3) + 2 * pad_w < f.size(3)) return input;
  }
  f = f.to(input.options().dtype(input.scalar_type()));
  return at::conv2d(input, f, {}, stride, {pad_h, pad_w}, {1, 1}, channels);
}

/// Max pooling with anti-aliasing: the max over each `kernel_size` window taken at stride 1, then `blur_2d` with
/// `stride`. Composer counterpart: `blurpool_layers.blurmax_pool2d(input, kernel_size=None (2x2), stride=2,
/// padding=0, dilation=1, ceil_mode=False, filter=None)`.
[[nodiscard]] inline at::Tensor blurmax_pool2d(const at::Tensor& input, std::vector<std::int64_t> kernel_size = {2, 2},
                                               std::vector<std::int64_t> stride = {2, 2},
                                               std::vector<std::int64_t> padding = {0, 0},
                                               std::vector<std::int64_t> dilation = {1, 1}, bool ceil_mode = false,
                                               std::optional<at::Tensor> filter = std::nullopt) {
  const at::Tensor maxs = at::max_pool2d(input, kernel_size, {1, 1}, padding, dilation, ceil_mode);
  return blur_2d(maxs, -1, std::move(stride), std::move(filter));
}

/// A drop-in replacement for a strided `torch::nn::Conv2d` with an anti-aliasing filter. With `blur_first`
/// (the default) the input is blurred at stride 1 and then convolved with the original stride (about the
/// original cost); otherwise the convolution runs at stride 1 and the blur subsamples with the original stride
/// (closer to the paper, about stride² times the cost). The convolution sits in slot `conv`, the
/// [C, 1, 3, 3] filter in buffer `blur_filter` (C: input channels when blurring first, output channels otherwise).
/// Composer counterpart: `composer.algorithms.blurpool.BlurConv2d`.
class BlurConv2dImpl : public surgery::SurgicalModule {
 public:
  /// A BlurConv2d with a fresh convolution built from `options` (the convolution's stride becomes 1 when
  /// `blur_first` is false).
  explicit BlurConv2dImpl(torch::nn::Conv2dOptions options, bool blur_first = true) : blur_first_(blur_first) {
    const auto stride = *options.stride();
    if (blur_first_) {
      blur_stride_ = {1, 1};
      blur_channels_ = options.in_channels();
    } else {
      blur_stride_ = {stride[0], stride[1]};
      blur_channels_ = options.out_channels();
      options.stride(1);
    }
    conv_ = register_slot("conv", torch::nn::Conv2d(options));
    blur_filter_ = register_buffer("blur_filter", default_blur_filter().repeat({blur_channels_, 1, 1, 1}));
  }

  /// A BlurConv2d doing `conv`'s convolution: same options, weights and bias copied (new parameters, as in
  /// Composer). Composer counterpart: `BlurConv2d.from_conv2d(module, module_index, blur_first)`.
  static std::shared_ptr<BlurConv2dImpl> from_conv2d(const torch::nn::Conv2dImpl& conv, bool blur_first = true) {
    auto blur = std::make_shared<BlurConv2dImpl>(detail::conv2d_options_of(conv), blur_first);
    at::NoGradGuard no_grad;
    auto inner = blur->conv();
    inner->weight.copy_(conv.weight);
    if (conv.bias.defined() && inner->bias.defined()) inner->bias.copy_(conv.bias);
    return blur;
  }

  /// Blur then convolve (`blur_first`), or convolve then blur-and-subsample.
  at::Tensor forward(const at::Tensor& input) {
    if (blur_first_) return call(conv_, blur_2d(input, blur_channels_, blur_stride_, blur_filter_));
    return blur_2d(call(conv_, input), blur_channels_, blur_stride_, blur_filter_);
  }

  /// The convolution in slot `conv` (null if surgery replaced it with another module type).
  [[nodiscard]] std::shared_ptr<torch::nn::Conv2dImpl> conv() const { return slot_as<torch::nn::Conv2dImpl>(conv_); }
  /// Whether the blur comes before the convolution.
  [[nodiscard]] bool blur_first() const noexcept { return blur_first_; }
  /// The blur's stride: 1 when blurring first, the original convolution's stride otherwise.
  [[nodiscard]] const std::vector<std::int64_t>& blur_stride() const noexcept { return blur_stride_; }
  /// The [C, 1, 3, 3] filter buffer.
  [[nodiscard]] const at::Tensor& blur_filter() const noexcept { return blur_filter_; }

 private:
  bool blur_first_;
  std::vector<std::int64_t> blur_stride_;
  std::int64_t blur_channels_ = 0;
  Slot conv_;
  at::Tensor blur_filter_;
};
/// Module holder of `BlurConv2dImpl`.
TORCH_MODULE(BlurConv2d);

/// A drop-in replacement for `torch::nn::MaxPool2d` with an anti-aliasing filter (see `blurmax_pool2d`); the
/// [1, 1, 3, 3] filter is buffer `filt2d`. Composer counterpart: `composer.algorithms.blurpool.BlurMaxPool2d`.
class BlurMaxPool2dImpl : public torch::nn::Module {
 public:
  /// A BlurMaxPool2d with the pooling options of `options` (the stride defaults to the kernel size).
  explicit BlurMaxPool2dImpl(const torch::nn::MaxPool2dOptions& options) : options_(options) {
    filt2d_ = register_buffer("filt2d", default_blur_filter());
  }
  /// A BlurMaxPool2d with `pool`'s options. Composer counterpart: `BlurMaxPool2d.from_maxpool2d`.
  static std::shared_ptr<BlurMaxPool2dImpl> from_maxpool2d(const torch::nn::MaxPool2dImpl& pool) {
    return std::make_shared<BlurMaxPool2dImpl>(pool.options);
  }
  /// Max at stride 1, then blur with the pooling stride.
  at::Tensor forward(const at::Tensor& input) {
    const auto& o = options_;
    return blurmax_pool2d(input, detail::to_vector(o.kernel_size()), detail::to_vector(o.stride()),
                          detail::to_vector(o.padding()), detail::to_vector(o.dilation()), o.ceil_mode(), filt2d_);
  }
  /// The pooling options.
  [[nodiscard]] const torch::nn::MaxPool2dOptions& options() const noexcept { return options_; }

 private:
  torch::nn::MaxPool2dOptions options_;
  at::Tensor filt2d_;
};
/// Module holder of `BlurMaxPool2dImpl`.
TORCH_MODULE(BlurMaxPool2d);

/// A module that only blurs: `blur_2d(input, channels, stride)` with the default filter (buffer
/// `blur_filter`, repeated over `channels` when it is positive). The padding is always half the filter size
/// (1), as in Composer, whose `padding` argument is stored but unused. Composer counterpart:
/// `composer.algorithms.blurpool.BlurPool2d(channels=0, stride=2)`.
class BlurPool2dImpl : public torch::nn::Module {
 public:
  /// A blur over `channels` channels (< 1: read from the input) with `stride`.
  explicit BlurPool2dImpl(std::int64_t channels = 0, std::int64_t stride = 2) : channels_(channels), stride_(stride) {
    if (stride < 1) throw std::invalid_argument("composer: BlurPool2d stride must be positive, got " + std::to_string(stride));
    at::Tensor filter = default_blur_filter();
    if (channels > 0) filter = filter.repeat({channels, 1, 1, 1});
    blur_filter_ = register_buffer("blur_filter", filter);
  }
  /// The blurred, subsampled input.
  at::Tensor forward(const at::Tensor& input) { return blur_2d(input, channels_, {stride_, stride_}, blur_filter_); }

 private:
  std::int64_t channels_, stride_;
  at::Tensor blur_filter_;
};
/// Module holder of `BlurPool2dImpl`.
TORCH_MODULE(BlurPool2d);

}  // namespace composer::modules
