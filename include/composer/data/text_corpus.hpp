#pragma once
/// \file
/// Text data for language models: a byte-level tokenizer, the reader of fortune files (the text of Debian's
/// `fortunes` package) and `make_language_model_data`, which splits documents into train / held-out byte streams
/// cut into next-token windows served by `TensorLoader`s.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/data/tensor_loader.hpp>
#include <composer/io/files.hpp>

namespace composer::data {

/// Byte-level tokenizer: each byte of the UTF-8 (or any) text is one token id in [0, 256), with no special token.
/// Composer counterpart: the Hugging Face tokenizer a `HuggingFaceModel` is given (Composer builds none in).
class ByteTokenizer {
 public:
  /// Number of token ids: one per byte value (256).
  static constexpr std::int64_t vocab_size = 256;

  /// The bytes of `text` as token ids: int64 [text.size()] on the CPU, each in [0, 256) ("Hi\n" gives 72, 105, 10).
  /// Counterpart: `tokenizer(text)["input_ids"]`.
  at::Tensor encode(std::string_view text) const {
    at::Tensor ids = at::empty({static_cast<std::int64_t>(text.size())}, at::TensorOptions().dtype(at::kLong));
    auto* out = ids.data_ptr<std::int64_t>();
    for (std::size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }

  /// The text whose bytes are the ids of `ids`, a 1-D integer tensor on any device. Counterpart:
  /// `tokenizer.decode(ids)`.
  /// \throws std::invalid_argument for a tensor that is undefined, not 1-D or not of an integer type, and for an id
  /// outside [0, 256) (naming the id and its position).
  std::string decode(const at::Tensor& ids) const {
    if (!ids.defined() || ids.dim() != 1 || !at::isIntegralType(ids.scalar_type(), /*includeBool=*/false))
      throw std::invalid_argument(
          "composer: ByteTokenizer::decode needs a 1-D integer tensor of token ids, got " +
          (ids.defined() ? std::string(c10::toString(ids.scalar_type())) + " of " + std::to_string(ids.dim()) +
                               " dimension(s)"
                         : std::string("an undefined tensor")));
    const at::Tensor values = ids.to(at::kCPU, at::kLong).contiguous();
    const auto* in = values.data_ptr<std::int64_t>();
    std::string text(static_cast<std::size_t>(values.numel()), '\0');
    for (std::int64_t i = 0; i < values.numel(); ++i) {
      if (in[i] < 0 || in[i] >= vocab_size)
        throw std::invalid_argument("composer: ByteTokenizer::decode got token id " + std::to_string(in[i]) +
                                    " at position " + std::to_string(i) + ", outside the byte ids [0, 256)");
      text[static_cast<std::size_t>(i)] = static_cast<char>(static_cast<unsigned char>(in[i]));
    }
    return text;
  }
};

/// Where Debian's `fortunes` package installs its fortune files (`art`, `computers`, ..., each with a `.dat` index
/// and a `.u8` link).
inline constexpr const char* default_fortunes_folder = "/usr/share/games/fortunes";

namespace detail {

// The whole content of the file `path`, or a std::runtime_error naming it.
inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("composer: read_fortunes cannot open '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw std::runtime_error("composer: read_fortunes cannot read '" + path + "'");
  return std::move(text).str();
}

// Whether `line` holds nothing but spaces, tabs and carriage returns.
inline bool blank_line(std::string_view line) { return line.find_first_not_of(" \t\r\f\v") == std::string_view::npos; }

// Appends to `documents` the fortunes of one file's text: split on lines holding only `%`, each stripped of its
// leading and trailing blank lines, empty ones dropped.
inline void split_fortunes(std::string_view text, std::vector<std::string>& documents) {
  std::vector<std::string_view> lines;
  auto flush = [&] {
    auto first = std::find_if_not(lines.begin(), lines.end(), blank_line);
    auto last = std::find_if_not(lines.rbegin(), std::make_reverse_iterator(first), blank_line).base();
    if (first != last) {
      std::string document;
      for (auto it = first; it != last; ++it) {
        if (it != first) document += '\n';
        document += *it;
      }
      documents.push_back(std::move(document));
    }
    lines.clear();
  };
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (line == "%" || line == "%\r")
      flush();
    else
      lines.push_back(line);
    start = end + 1;
  }
  flush();
}

}  // namespace detail

/// The documents (fortunes) of the fortune file `folder_or_file`, or of every fortune file in that folder: its
/// regular files (not symbolic links, not subfolders) whose names hold no dot (so no `.dat` index, `.u8` link or
/// hidden file), read in name order. A file's fortunes are separated by lines holding only `%`; each is stripped of
/// its surrounding blank lines (inner lines are kept verbatim, joined by '\n', with no final newline) and empty ones
/// are dropped. The path is a `std::string` (the library avoids std::filesystem, see composer/io/files.hpp).
/// Composer counterpart: the text dataset a language-model dataloader reads (e.g. a Hugging Face `datasets` corpus).
/// \throws std::runtime_error naming the path when it does not exist (saying to install Debian's fortunes package
/// when it is `default_fortunes_folder`), when a folder holds no fortune file, when the corpus holds no text, or
/// when a file cannot be read.
inline std::vector<std::string> read_fortunes(const std::string& folder_or_file = default_fortunes_folder) {
  const std::string& path = folder_or_file;
  const io::FileType type = io::file_type(path);
  if (type == io::FileType::not_found) {
    std::string trimmed = path;
    while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
    throw std::runtime_error("composer: read_fortunes: '" + path + "' does not exist" +
                             (trimmed == default_fortunes_folder
                                  ? "; install Debian's fortunes package (apt-get install fortunes) or pass a folder "
                                    "of fortune files"
                                  : "; pass a fortune file or a folder of them"));
  }
  std::vector<std::string> files;
  if (type == io::FileType::directory) {
    std::vector<std::string> names = io::list_directory(path);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      if (name.find('.') != std::string::npos) continue;
      const std::string file = io::join(path, name);
      if (io::file_type(file, /*follow_links=*/false) == io::FileType::regular) files.push_back(file);
    }
    if (files.empty())
      throw std::runtime_error("composer: read_fortunes: the folder '" + path +
                               "' holds no fortune file (a regular file whose name has no dot)");
  } else {
    files.push_back(path);
  }
  std::vector<std::string> documents;
  for (const auto& file : files) detail::split_fortunes(detail::read_text_file(file), documents);
  if (documents.empty())
    throw std::runtime_error("composer: read_fortunes: '" + path + "' holds no text (no non-blank fortune)");
  return documents;
}

/// How `make_language_model_data` splits, windows and batches the documents.
struct LanguageModelDataOptions {
  std::int64_t sequence_length = 128;  ///< tokens per input row (each window holds one more), > 0
  std::int64_t batch_size = 32;        ///< windows per batch of both loaders, > 0
  double heldout_fraction = 0.1;       ///< share of the documents held out, in [0, 1)
  std::uint64_t seed = 0;              ///< determines the held-out documents and the training shuffle
  bool shuffle = true;                 ///< shuffle the training windows each epoch
};

/// The train and held-out next-token data of `make_language_model_data`. Each loader yields `composer::Batch`es
/// with inputs and targets int64 [B, sequence_length], the targets being the inputs shifted by one token.
struct LanguageModelData {
  TensorLoader train;                  ///< the training windows, shuffled by seed and epoch (unless disabled)
  TensorLoader heldout;                ///< the held-out windows, in stream order (empty when heldout_fraction is 0)
  std::int64_t train_tokens;           ///< bytes of the training stream (documents and their '\n's)
  std::int64_t heldout_tokens;         ///< bytes of the held-out stream
  std::int64_t documents_train;        ///< documents in the training split
  std::int64_t documents_heldout;      ///< documents in the held-out split
  std::vector<std::int64_t> heldout_documents;  ///< indices of the held-out documents in the input, ascending
};

namespace detail {

// The stream of `documents[i]` for the given indices, each followed by '\n', as int64 token ids, cut into windows of
// `window` tokens: (inputs, targets) of shape [windows, window - 1].
inline std::pair<at::Tensor, at::Tensor> next_token_windows(const std::vector<std::string>& documents,
                                                            const std::vector<std::int64_t>& indices,
                                                            std::int64_t window, const char* split,
                                                            std::int64_t& tokens) {
  std::string stream;
  for (const auto i : indices) {
    stream += documents[static_cast<std::size_t>(i)];
    stream += '\n';
  }
  tokens = static_cast<std::int64_t>(stream.size());
  if (tokens < window)
    throw std::invalid_argument("composer: make_language_model_data's " + std::string(split) + " split has " +
                                std::to_string(tokens) + " tokens from " + std::to_string(indices.size()) +
                                " document(s), fewer than the " + std::to_string(window) +
                                " of one window (sequence_length + 1); use more text or a shorter sequence_length");
  const std::int64_t rows = tokens / window;
  const at::Tensor windows =
      ByteTokenizer{}.encode(std::string_view(stream).substr(0, static_cast<std::size_t>(rows * window)))
          .view({rows, window});
  return {windows.narrow(1, 0, window - 1).contiguous(), windows.narrow(1, 1, window - 1).contiguous()};
}

}  // namespace detail

/// Next-token training data from `documents`. The held-out split is a seeded choice of round(heldout_fraction * D)
/// of the D documents (at least one when the fraction is positive): the first ones of a Fisher-Yates shuffle of
/// 0..D-1 driven by std::mt19937_64 seeded with splitmix64(seed), the same on every platform. Each split's documents,
/// in their input order, are encoded by `ByteTokenizer` as one stream with a '\n' after each document, which is cut
/// into non-overlapping windows of sequence_length + 1 tokens (the tail that fills no window is dropped): a window's
/// first sequence_length tokens are the inputs, its last sequence_length the targets. The training loader shuffles
/// the windows (when `options.shuffle`) by the seed and epoch, keeping the last partial batch; the held-out loader
/// keeps their order. With a heldout_fraction of 0 the held-out loader is empty. Counterpart: Composer's language-model
/// dataloaders (e.g. LLM Foundry's text dataloader over concatenated token streams) with a held-out evaluation split.
/// \throws std::invalid_argument for no document, sequence_length or batch_size below 1, a heldout_fraction outside
/// [0, 1), or a split whose stream is shorter than one window (naming the split, its tokens and the tokens needed).
inline LanguageModelData make_language_model_data(const std::vector<std::string>& documents,
                                                  const LanguageModelDataOptions& options = {}) {
  if (documents.empty()) throw std::invalid_argument("composer: make_language_model_data got no document");
  if (options.sequence_length < 1)
    throw std::invalid_argument("composer: make_language_model_data's sequence_length must be at least 1, got " +
                                std::to_string(options.sequence_length));
  if (options.batch_size < 1)
    throw std::invalid_argument("composer: make_language_model_data's batch_size must be at least 1, got " +
                                std::to_string(options.batch_size));
  if (!(options.heldout_fraction >= 0.0 && options.heldout_fraction < 1.0))
    throw std::invalid_argument("composer: make_language_model_data's heldout_fraction must be in [0, 1), got " +
                                std::to_string(options.heldout_fraction));

  const auto count = static_cast<std::int64_t>(documents.size());
  std::int64_t heldout_count = static_cast<std::int64_t>(std::llround(options.heldout_fraction * static_cast<double>(count)));
  if (options.heldout_fraction > 0.0) heldout_count = std::max<std::int64_t>(heldout_count, 1);
  heldout_count = std::min(heldout_count, count);

  std::vector<std::int64_t> order(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) order[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 engine(detail::splitmix64(options.seed));
  for (std::int64_t i = count - 1; i > 0; --i)
    std::swap(order[static_cast<std::size_t>(i)],
              order[detail::uniform_below(engine, static_cast<std::uint64_t>(i) + 1)]);
  std::vector<std::int64_t> heldout(order.begin(), order.begin() + heldout_count);
  std::vector<std::int64_t> train(order.begin() + heldout_count, order.end());
  std::sort(heldout.begin(), heldout.end());
  std::sort(train.begin(), train.end());

  const std::int64_t window = options.sequence_length + 1;
  std::int64_t train_tokens = 0, heldout_tokens = 0;
  auto [train_x, train_y] = detail::next_token_windows(documents, train, window, "train", train_tokens);
  at::Tensor heldout_x, heldout_y;
  if (heldout.empty()) {
    heldout_x = at::empty({0, options.sequence_length}, at::TensorOptions().dtype(at::kLong));
    heldout_y = at::empty({0, options.sequence_length}, at::TensorOptions().dtype(at::kLong));
  } else {
    std::tie(heldout_x, heldout_y) = detail::next_token_windows(documents, heldout, window, "held-out", heldout_tokens);
  }

  TensorLoaderOptions train_options;
  train_options.batch_size = options.batch_size;
  train_options.shuffle = options.shuffle;
  train_options.drop_last = false;
  train_options.seed = options.seed;
  TensorLoaderOptions heldout_options;
  heldout_options.batch_size = options.batch_size;
  heldout_options.shuffle = false;
  heldout_options.seed = options.seed;

  return LanguageModelData{TensorLoader(std::move(train_x), std::move(train_y), train_options),
                           TensorLoader(std::move(heldout_x), std::move(heldout_y), heldout_options),
                           train_tokens,
                           heldout_tokens,
                           static_cast<std::int64_t>(train.size()),
                           static_cast<std::int64_t>(heldout.size()),
                           std::move(heldout)};
}

}  // namespace composer::data
