#pragma once
/// \file
/// composer::models::SimpleCNN — two convolution blocks and a classifier, for 28x28 grey images.

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/options/pooling.h>
#include <torch/nn/pimpl.h>

namespace composer::models {

/// Options of `SimpleCNN`.
struct SimpleCNNOptions {
  std::int64_t in_channels = 1;    ///< image channels
  std::int64_t image_size = 28;    ///< image height and width (divisible by 4)
  std::int64_t num_classes = 10;   ///< classifier outputs
  std::int64_t width = 32;         ///< channels of the first block; the second has twice as many
  std::int64_t hidden = 128;       ///< units of the hidden linear layer
  double dropout = 0.25;           ///< dropout before the last layer
};

/// conv3x3-BN-ReLU-maxpool twice (width, 2·width channels), an adaptive average pool to the design size (an
/// identity for image_size inputs, so that smaller images also fit), then linear-ReLU-dropout-linear: the "2 conv +
/// pooling + BN" network of the Fashion-MNIST benchmark table. Composer counterpart: the small CNN of
/// `composer.models.mnist_model`, with batch normalisation.
class SimpleCNNImpl : public torch::nn::Module {
 public:
  /// Builds the network.
  explicit SimpleCNNImpl(const SimpleCNNOptions& options = {}) {
    using namespace torch::nn;
    const std::int64_t w = options.width;
    const std::int64_t side = options.image_size / 4;
    features = register_module(
        "features",
        Sequential(Conv2d(Conv2dOptions(options.in_channels, w, 3).padding(1).bias(false)), BatchNorm2d(w), ReLU(),
                   MaxPool2d(2), Conv2d(Conv2dOptions(w, 2 * w, 3).padding(1).bias(false)), BatchNorm2d(2 * w),
                   ReLU(), MaxPool2d(2),
                   // identity at the design size; lets smaller images (progressive resizing) reach the classifier
                   AdaptiveAvgPool2d(AdaptiveAvgPool2dOptions({side, side}))));
    classifier = register_module(
        "classifier", Sequential(Flatten(), Linear(2 * w * side * side, options.hidden), ReLU(),
                                 Dropout(options.dropout), Linear(options.hidden, options.num_classes)));
  }
  /// Logits of shape [N, num_classes] for images of shape [N, C, H, W].
  at::Tensor forward(const at::Tensor& x) { return classifier->forward(features->forward(x)); }

  torch::nn::Sequential features{nullptr};    ///< the convolution blocks
  torch::nn::Sequential classifier{nullptr};  ///< the linear head
};
/// Module holder of `SimpleCNNImpl`.
TORCH_MODULE(SimpleCNN);

}  // namespace composer::models
