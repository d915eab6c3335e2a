#pragma once
/// \file
/// composer::models::ResNet — residual networks for small images (ResNet-8/20/56 CIFAR style, ResNet-18/34 style),
/// with batch normalisation and configurable width, built from replaceable slots so that model-surgery methods
/// (BlurPool, SqueezeExcite, StochasticDepth, GhostBatchNorm, Factorize, ...) act on them.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include <composer/surgery/surgical_module.hpp>

namespace composer::models {

/// The projection shortcut of a residual block that changes resolution or width: a strided 1x1 convolution
/// and batch normalisation (slots `conv`, `bn`). Composer counterpart: torchvision's `downsample` Sequential.
class ResNetShortcutImpl : public surgery::SurgicalModule {
 public:
  /// A shortcut from `in_channels` to `out_channels` with `stride`.
  ResNetShortcutImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride) {
    using namespace torch::nn;
    conv_ = register_slot("conv", Conv2d(Conv2dOptions(in_channels, out_channels, 1).stride(stride).bias(false)));
    bn_ = register_slot("bn", BatchNorm2d(out_channels));
  }
  /// bn(conv(x)).
  at::Tensor forward(const at::Tensor& x) { return call(bn_, call(conv_, x)); }

 private:
  Slot conv_, bn_;
};
/// Module holder of `ResNetShortcutImpl`.
TORCH_MODULE(ResNetShortcut);

/// The basic residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), with 3x3 convolutions (the
/// first strided) and an identity shortcut unless the stride or width changes (slots `conv1`, `bn1`, `conv2`,
/// `bn2`, and `shortcut` when projected). Composer counterpart: torchvision's `BasicBlock`.
class BasicBlockImpl : public surgery::SurgicalModule {
 public:
  /// A block from `in_channels` to `out_channels`, downsampling by `stride`.
  BasicBlockImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride = 1)
      : in_channels_(in_channels), out_channels_(out_channels), stride_(stride) {
    using namespace torch::nn;
    if (in_channels <= 0 || out_channels <= 0 || stride <= 0)
      throw std::invalid_argument("composer: BasicBlock needs positive channels and stride, got " +
                                  std::to_string(in_channels) + " -> " + std::to_string(out_channels) +
                                  " with stride " + std::to_string(stride));
    conv1_ = register_slot("conv1",
                           Conv2d(Conv2dOptions(in_channels, out_channels, 3).stride(stride).padding(1).bias(false)));
    bn1_ = register_slot("bn1", BatchNorm2d(out_channels));
    conv2_ = register_slot("conv2", Conv2d(Conv2dOptions(out_channels, out_channels, 3).padding(1).bias(false)));
    bn2_ = register_slot("bn2", BatchNorm2d(out_channels));
    if (stride != 1 || in_channels != out_channels)
      shortcut_ = register_slot("shortcut", ResNetShortcut(in_channels, out_channels, stride));
  }

  /// The residual branch, bn2(conv2(relu(bn1(conv1(x))))).
  at::Tensor residual(const at::Tensor& x) { return call(bn2_, call(conv2_, at::relu(call(bn1_, call(conv1_, x))))); }
  /// The shortcut branch: x, or its projection.
  at::Tensor shortcut(const at::Tensor& x) { return shortcut_ ? call(shortcut_, x) : x; }
  /// relu(residual(x) + shortcut(x)).
  at::Tensor forward(const at::Tensor& x) { return at::relu(residual(x) + shortcut(x)); }

  /// Input channels.
  [[nodiscard]] std::int64_t in_channels() const noexcept { return in_channels_; }
  /// Output channels.
  [[nodiscard]] std::int64_t out_channels() const noexcept { return out_channels_; }
  /// Stride of the first convolution (and of the shortcut).
  [[nodiscard]] std::int64_t stride() const noexcept { return stride_; }

 private:
  std::int64_t in_channels_, out_channels_, stride_;
  Slot conv1_, bn1_, conv2_, bn2_, shortcut_;
};
/// Module holder of `BasicBlockImpl`.
TORCH_MODULE(BasicBlock);

/// A stage: residual blocks run in order, each in a slot named by its index (`"0"`, `"1"`, ...), as in
/// torchvision's `layerN` Sequential.
class ResNetStageImpl : public surgery::SurgicalModule {
 public:
  /// `blocks` basic blocks from `in_channels` to `out_channels`, the first one downsampling by `stride`.
  ResNetStageImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t blocks, std::int64_t stride) {
    if (blocks <= 0)
      throw std::invalid_argument("composer: a ResNet stage needs at least one block, got " + std::to_string(blocks));
    for (std::int64_t i = 0; i < blocks; ++i)
      blocks_.push_back(register_slot(std::to_string(i), BasicBlock(i == 0 ? in_channels : out_channels,
                                                                    out_channels, i == 0 ? stride : 1)));
  }
  /// The blocks applied in order.
  at::Tensor forward(at::Tensor x) {
    for (const auto& block : blocks_) x = call(block, x);
    return x;
  }

 private:
  std::vector<Slot> blocks_;
};
/// Module holder of `ResNetStageImpl`.
TORCH_MODULE(ResNetStage);

/// Options of `ResNet`.
struct ResNetOptions {
  std::vector<std::int64_t> blocks_per_stage{3, 3, 3};  ///< blocks in each stage; stage i has width·2^i channels
  std::int64_t width = 16;         ///< channels of the stem and the first stage
  std::int64_t in_channels = 3;    ///< image channels
  std::int64_t num_classes = 10;   ///< classifier outputs
  double dropout = 0.0;            ///< dropout before the classifier (a `dropout` slot exists only when > 0)
  bool stem_max_pool = false;      ///< a 3x3 stride-2 max pool after the stem (ImageNet style; off for small images)
};

/// A residual network for small images: a 3x3 stem convolution with batch normalisation and ReLU (optionally a
/// max pool), stages of basic blocks (`layer1`, `layer2`, ...; every stage after the first halves the
/// resolution and doubles the width), global average pooling, optional dropout and a linear classifier (`fc`).
/// Every convolution, normalisation, pooling and dropout layer sits in a slot, so surgery can replace it.
/// Composer counterpart: `composer.models.resnet_cifar` (ResNet-20/56) and torchvision's ResNet-18 family.
class ResNetImpl : public surgery::SurgicalModule {
 public:
  /// Builds the network; Kaiming-normal convolutions (fan-out, ReLU), unit BN scales, zero BN shifts.
  explicit ResNetImpl(const ResNetOptions& options = {}) : options_(options) {
    using namespace torch::nn;
    if (options.blocks_per_stage.empty())
      throw std::invalid_argument("composer: ResNet needs at least one stage");
    if (options.width <= 0 || options.in_channels <= 0 || options.num_classes <= 0)
      throw std::invalid_argument("composer: ResNet needs positive width, in_channels and num_classes");
    if (!(options.dropout >= 0.0 && options.dropout < 1.0))
      throw std::invalid_argument("composer: ResNet dropout must be in [0, 1), got " + std::to_string(options.dropout));
    conv1_ = register_slot("conv1", Conv2d(Conv2dOptions(options.in_channels, options.width, 3).padding(1).bias(false)));
    bn1_ = register_slot("bn1", BatchNorm2d(options.width));
    if (options.stem_max_pool) maxpool_ = register_slot("maxpool", MaxPool2d(MaxPool2dOptions(3).stride(2).padding(1)));
    std::int64_t channels = options.width;
    for (std::size_t i = 0; i < options.blocks_per_stage.size(); ++i) {
      const std::int64_t out = options.width << i;
      stages_.push_back(register_slot("layer" + std::to_string(i + 1),
                                      ResNetStage(channels, out, options.blocks_per_stage[i], i == 0 ? 1 : 2)));
      channels = out;
    }
    pool_ = register_slot("pool", AdaptiveAvgPool2d(AdaptiveAvgPool2dOptions(1)));
    if (options.dropout > 0.0) dropout_ = register_slot("dropout", Dropout(options.dropout));
    fc_ = register_slot("fc", Linear(channels, options.num_classes));
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* conv = module->as<Conv2d>()) {
        init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else if (auto* bn = module->as<BatchNorm2d>()) {
        init::ones_(bn->weight);
        init::zeros_(bn->bias);
      }
    }
  }

  /// Features before the classifier: [N, width·2^(stages−1)] for images of shape [N, C, H, W].
  at::Tensor features(const at::Tensor& x) {
    at::Tensor y = at::relu(call(bn1_, call(conv1_, x)));
    if (maxpool_) y = call(maxpool_, y);
    for (const auto& stage : stages_) y = call(stage, y);
    return call(pool_, y).flatten(1);
  }
  /// Logits of shape [N, num_classes].
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = features(x);
    if (dropout_) y = call(dropout_, y);
    return call(fc_, y);
  }

  /// The options the network was built with.
  [[nodiscard]] const ResNetOptions& options() const noexcept { return options_; }

 private:
  ResNetOptions options_;
  Slot conv1_, bn1_, maxpool_, pool_, dropout_, fc_;
  std::vector<Slot> stages_;
};
/// Module holder of `ResNetImpl`.
TORCH_MODULE(ResNet);

/// Options of a ResNet of `depth` layers: 6n+2 (8, 20, 32, 44, 56, 110: three stages of n blocks, the CIFAR
/// family, width 16 by default) or 18 / 34 (four stages, [2,2,2,2] / [3,4,6,3], width 64 by default); the other
/// fields are taken from `base` (its `width` too when it is not the default 16).
/// Composer counterpart: `composer.models.composer_resnet_cifar(model_name="resnet_20")` and friends.
/// \throws std::invalid_argument for another depth.
[[nodiscard]] inline ResNetOptions resnet_options(int depth, ResNetOptions base = {}) {
  const bool default_width = base.width == ResNetOptions{}.width;
  if (depth == 18 || depth == 34) {
    base.blocks_per_stage = depth == 18 ? std::vector<std::int64_t>{2, 2, 2, 2} : std::vector<std::int64_t>{3, 4, 6, 3};
    if (default_width) base.width = 64;
    return base;
  }
  if (depth >= 8 && (depth - 2) % 6 == 0) {
    const std::int64_t n = (depth - 2) / 6;
    base.blocks_per_stage = {n, n, n};
    return base;
  }
  throw std::invalid_argument("composer: no ResNet of depth " + std::to_string(depth) +
                              " (use 6n+2 such as 8, 20, 56, or 18, 34)");
}

/// ResNet-20 (three stages of three blocks, width 16 by default).
[[nodiscard]] inline ResNet resnet20(ResNetOptions base = {}) { return ResNet(resnet_options(20, std::move(base))); }
/// ResNet-56 (three stages of nine blocks, width 16 by default).
[[nodiscard]] inline ResNet resnet56(ResNetOptions base = {}) { return ResNet(resnet_options(56, std::move(base))); }
/// ResNet-18 (four stages of two blocks, width 64 by default).
[[nodiscard]] inline ResNet resnet18(ResNetOptions base = {}) { return ResNet(resnet_options(18, std::move(base))); }

}  // namespace composer::models
