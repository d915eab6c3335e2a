#pragma once
/// \file
/// composer::data::FashionMNIST — the Fashion-MNIST train or test split loaded from its IDX files, plus the
/// normalisation that turns its uint8 images into model inputs.

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <ATen/ATen.h>

#include <composer/data/idx.hpp>
#include <composer/io/files.hpp>

namespace composer::data {

/// Which part of a dataset to load. Counterpart: torchvision's `train=True` / `train=False` argument.
enum class Split {
  TRAIN,  ///< the 60000 training images
  TEST,   ///< the 10000 test images
};

/// "train" or "test". Counterpart: the split names of `composer.datasets` builders.
constexpr std::string_view split_name(Split split) noexcept { return split == Split::TRAIN ? "train" : "test"; }

/// Pixel mean of the Fashion-MNIST training images scaled to [0, 1] (0.2860), as in the common
/// `torchvision.transforms.Normalize((0.2860,), (0.3530,))`.
inline constexpr double fashion_mnist_mean = 0.2860;
/// Pixel standard deviation of the Fashion-MNIST training images scaled to [0, 1] (0.3530), as in the common
/// `torchvision.transforms.Normalize((0.2860,), (0.3530,))`.
inline constexpr double fashion_mnist_std = 0.3530;

/// Turns uint8 images (any shape, e.g. [N, 1, 28, 28]) into float32 model inputs `(x / 255 - 0.2860) / 0.3530`,
/// so that the training set has mean 0 and standard deviation 1. Usable directly as a `TensorLoader` transform.
/// Throws std::invalid_argument for a tensor that is not uint8 (guarding against normalising twice).
/// Counterpart: torchvision's `Compose([ToTensor(), Normalize((0.2860,), (0.3530,))])`.
inline at::Tensor normalize_fashion_mnist(const at::Tensor& images) {
  if (!images.defined() || images.scalar_type() != at::kByte)
    throw std::invalid_argument(std::string("composer: normalize_fashion_mnist expects uint8 images, got ") +
                                (images.defined() ? std::string(c10::toString(images.scalar_type())) : "an undefined tensor"));
  return images.to(at::kFloat).div_(255.0).sub_(fashion_mnist_mean).div_(fashion_mnist_std);
}

/// The Fashion-MNIST dataset (Zalando's 28x28 grey-scale clothing images in 10 classes), one split held in memory:
/// images uint8 [N, 1, 28, 28] and labels int64 [N], N = 60000 (train) or 10000 (test). Counterpart:
/// `torchvision.datasets.FashionMNIST`, which Composer's dataset builders (`composer.datasets.build_mnist_dataloader`)
/// wrap; nothing is downloaded: the files come from the Debian package `dataset-fashion-mnist`.
class FashionMNIST {
 public:
  /// Where the Debian package `dataset-fashion-mnist` installs the IDX files.
  static constexpr std::string_view default_root = "/usr/share/datasets/fashion-mnist";
  /// Number of classes (10).
  static constexpr std::int64_t num_classes = 10;
  /// Height and width of an image in pixels (28).
  static constexpr std::int64_t image_size = 28;
  /// Class names, indexed by label. Counterpart: `torchvision.datasets.FashionMNIST.classes`.
  static constexpr std::array<std::string_view, 10> classes = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

  /// Loads `split` from `root`, which holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
  /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each gzip-compressed (`.gz`) or not; when both forms
  /// exist the uncompressed one is read. Throws std::runtime_error naming the directory and the Debian package
  /// `dataset-fashion-mnist` when the directory or a file is missing, and naming the file when its contents are not
  /// Fashion-MNIST (wrong shape, labels outside 0..9, counts that differ). Counterpart:
  /// `torchvision.datasets.FashionMNIST(root, train=...)`.
  explicit FashionMNIST(Split split = Split::TRAIN, const std::string& root = std::string(default_root))
      : split_(split), root_(root) {
    const std::string prefix = split == Split::TRAIN ? "train" : "t10k";
    images_path_ = find_file(prefix + "-images-idx3-ubyte");
    labels_path_ = find_file(prefix + "-labels-idx1-ubyte");
    auto pair = read_idx_pair(images_path_, labels_path_);
    const auto& im = pair.images;
    if (im.scalar_type() != at::kByte || im.dim() != 3 || im.size(1) != image_size || im.size(2) != image_size)
      throw std::runtime_error("composer: '" + images_path_ + "' is not a Fashion-MNIST images file: " +
                               "expected uint8 [N, 28, 28], got " + std::string(c10::toString(im.scalar_type())) +
                               " " + detail::dims_string(im.sizes().vec()));
    const auto& lb = pair.labels;
    if (lb.scalar_type() != at::kByte || lb.dim() != 1)
      throw std::runtime_error("composer: '" + labels_path_ + "' is not a Fashion-MNIST labels file: " +
                               "expected uint8 [N], got " + std::string(c10::toString(lb.scalar_type())) + " " +
                               detail::dims_string(lb.sizes().vec()));
    if (lb.numel() > 0) {
      const auto top = lb.max().item<std::int64_t>();
      if (top >= num_classes)
        throw std::runtime_error("composer: '" + labels_path_ + "' holds label " + std::to_string(top) +
                                 ", outside Fashion-MNIST's classes 0..9");
    }
    images_ = im.unsqueeze(1).contiguous();
    labels_ = lb.to(at::kLong);
  }

  /// The images, uint8 [N, 1, 28, 28], pixel values 0 (background) to 255. Counterpart: `dataset.data`
  /// (which torchvision keeps as [N, 28, 28]).
  const at::Tensor& images() const noexcept { return images_; }
  /// The class labels, int64 [N] in 0..9. Counterpart: `dataset.targets`.
  const at::Tensor& labels() const noexcept { return labels_; }
  /// Number of images N. Counterpart: `len(dataset)`.
  std::int64_t size() const { return images_.size(0); }
  /// The split that was loaded.
  Split split() const noexcept { return split_; }
  /// The directory the files were read from.
  const std::string& root() const noexcept { return root_; }
  /// The images file that was read (with or without `.gz`).
  const std::string& images_path() const noexcept { return images_path_; }
  /// The labels file that was read (with or without `.gz`).
  const std::string& labels_path() const noexcept { return labels_path_; }
  /// The name of class `label` (0..9); throws std::out_of_range otherwise. Counterpart: `dataset.classes[label]`.
  static std::string_view class_name(std::int64_t label) {
    if (label < 0 || label >= num_classes)
      throw std::out_of_range("composer: Fashion-MNIST label " + std::to_string(label) + " is outside 0..9");
    return classes[static_cast<std::size_t>(label)];
  }

 private:
  std::string find_file(const std::string& stem) const {
    static constexpr const char* hint = "; install the Debian package `dataset-fashion-mnist` "
                                        "(apt-get install dataset-fashion-mnist) or pass the directory holding the "
                                        "Fashion-MNIST IDX files";
    if (!is_of_type(root_, io::FileType::directory))
      throw std::runtime_error("composer: Fashion-MNIST directory '" + root_ + "' does not exist" + hint);
    for (const auto& name : {stem, stem + ".gz"}) {
      auto candidate = io::join(root_, name);
      if (is_of_type(candidate, io::FileType::regular)) return candidate;
    }
    throw std::runtime_error("composer: Fashion-MNIST " + std::string(split_name(split_)) + " file '" + stem +
                             "' (or '" + stem + ".gz') not found in directory '" + root_ + "'" + hint);
  }

  // Whether `path` is of `type`; a path the system cannot inspect counts as absent.
  static bool is_of_type(const std::string& path, io::FileType type) {
    try {
      return io::file_type(path) == type;
    } catch (const io::FileError&) {
      return false;
    }
  }

  Split split_;
  std::string root_;
  std::string images_path_;
  std::string labels_path_;
  at::Tensor images_;
  at::Tensor labels_;
};

}  // namespace composer::data
