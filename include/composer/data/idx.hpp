#pragma once
/// \file
/// composer::data::read_idx — reader for IDX files (the MNIST / Fashion-MNIST file format), plain or
/// gzip-compressed, returning an at::Tensor of the file's shape.
///
/// Format (http://yann.lecun.com/exdb/mnist/): magic `00 00 <type> <ndims>`, then `ndims` big-endian uint32
/// dimension sizes, then the elements in row-major order, big-endian. Element types: 0x08 uint8, 0x09 int8,
/// 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/io/files.hpp>

namespace composer::data {

/// Element type code of an IDX file (the third magic byte). Counterpart: the type codes torchvision's
/// `read_sn3_pascalvincent_tensor` (`torchvision.datasets.mnist`) understands.
enum class IdxType : std::uint8_t {
  UINT8 = 0x08,    ///< unsigned byte, read as at::kByte
  INT8 = 0x09,     ///< signed byte, read as at::kChar
  INT16 = 0x0B,    ///< big-endian short, read as at::kShort
  INT32 = 0x0C,    ///< big-endian int, read as at::kInt
  FLOAT32 = 0x0D,  ///< big-endian float, read as at::kFloat
  FLOAT64 = 0x0E,  ///< big-endian double, read as at::kDouble
};

/// Limits and leniency of `read_idx`. No Composer/PyTorch counterpart (torchvision reads without checks).
struct IdxReadOptions {
  /// Accept (and ignore) bytes after the data the header declares; by default they are an error.
  bool allow_trailing_bytes = false;
  /// Refuse a header declaring more data than this many bytes (default 16 GiB): guards against absurd dimensions.
  std::uint64_t max_bytes = std::uint64_t{1} << 34;
  /// Refuse a header declaring more dimensions than this.
  std::uint8_t max_dims = 8;
};

/// The decoded header of an IDX file. Counterpart: the header torchvision's `read_sn3_pascalvincent_tensor` parses.
struct IdxHeader {
  IdxType type = IdxType::UINT8;     ///< element type
  std::vector<std::int64_t> dims;    ///< dimension sizes, outermost first
  std::uint64_t numel = 0;           ///< number of elements, the product of `dims`
  std::uint64_t data_bytes = 0;      ///< bytes of element data following the header
  std::uint64_t header_bytes = 0;    ///< bytes of the header itself: 4 + 4 * dims.size()
};

namespace detail {

struct IdxTypeInfo {
  at::ScalarType scalar_type;
  std::size_t element_size;
  const char* name;
};

inline std::optional<IdxTypeInfo> idx_type_info(std::uint8_t code) noexcept {
  switch (code) {
    case 0x08: return IdxTypeInfo{at::kByte, 1, "uint8"};
    case 0x09: return IdxTypeInfo{at::kChar, 1, "int8"};
    case 0x0B: return IdxTypeInfo{at::kShort, 2, "int16"};
    case 0x0C: return IdxTypeInfo{at::kInt, 4, "int32"};
    case 0x0D: return IdxTypeInfo{at::kFloat, 4, "float32"};
    case 0x0E: return IdxTypeInfo{at::kDouble, 8, "float64"};
    default: return std::nullopt;
  }
}

inline std::string hex_bytes(const unsigned char* bytes, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0xF];
  }
  return out;
}

inline std::string dims_string(const std::vector<std::int64_t>& dims) {
  std::string out = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

[[noreturn]] inline void idx_fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("composer: IDX file '" + path + "': " + what);
}

struct GzClose {
  void operator()(gzFile_s* f) const noexcept {
    if (f) gzclose(f);
  }
};
using GzHandle = std::unique_ptr<gzFile_s, GzClose>;

/// An opened IDX file: a zlib handle (which reads gzip and plain files alike) plus what was learnt on opening.
struct IdxStream {
  std::string path;
  GzHandle gz;
  bool gzip = false;            // the file starts with the gzip magic 1f 8b
  std::uint64_t file_size = 0;  // on-disk size in bytes

  /// Reads up to `n` bytes; returns how many were read (fewer only at end of data). Throws on a zlib error.
  std::uint64_t read(void* buffer, std::uint64_t n) {
    auto* out = static_cast<unsigned char*>(buffer);
    std::uint64_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(n - done, std::uint64_t{1} << 30));
      const int got = gzread(gz.get(), out + done, chunk);
      if (got < 0) {
        int code = Z_OK;
        const char* msg = gzerror(gz.get(), &code);
        idx_fail(path, std::string(gzip ? "corrupt gzip data: " : "read error: ") + (msg ? msg : "unknown error"));
      }
      if (got == 0) break;
      done += static_cast<std::uint64_t>(got);
    }
    return done;
  }

  /// Reads and counts every remaining byte.
  std::uint64_t count_rest() {
    std::vector<unsigned char> scratch(std::size_t{1} << 16);
    std::uint64_t total = 0;
    for (;;) {
      const std::uint64_t got = read(scratch.data(), scratch.size());
      total += got;
      if (got < scratch.size()) return total;
    }
  }

  /// A note on why data ended early, when zlib knows ("compressed stream ends early").
  std::string early_end_note() {
    int code = Z_OK;
    gzerror(gz.get(), &code);
    return (gzip && code == Z_BUF_ERROR) ? " (the gzip stream ends early)" : "";
  }
};

inline IdxStream open_idx(const std::string& path) {
  io::FileType type = io::FileType::not_found;
  try {
    type = io::file_type(path);
  } catch (const io::FileError& error) {
    idx_fail(path, "cannot open for reading: " + error.reason());
  }
  if (type == io::FileType::not_found) idx_fail(path, "file not found");
  if (type == io::FileType::directory) idx_fail(path, "is a directory, not a file");

  IdxStream s;
  s.path = path;
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) idx_fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
    unsigned char magic[2] = {0, 0};
    probe.read(reinterpret_cast<char*>(magic), 2);
    s.gzip = probe.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  }
  try {
    s.file_size = io::file_size(path);
  } catch (const io::FileError& error) {
    idx_fail(path, "cannot determine file size: " + error.reason());
  }

  errno = 0;
  s.gz.reset(gzopen(path.c_str(), "rb"));
  if (!s.gz)
    idx_fail(path, std::string("cannot open for reading: ") + (errno ? std::strerror(errno) : "zlib out of memory"));
  gzbuffer(s.gz.get(), 1u << 17);
  return s;
}

inline IdxHeader parse_idx_header(IdxStream& s, const IdxReadOptions& options) {
  unsigned char magic[4] = {0, 0, 0, 0};
  const auto got = s.read(magic, 4);
  if (got < 4)
    idx_fail(s.path, "truncated header: expected 4 magic bytes, found " + std::to_string(got) + s.early_end_note());
  if (magic[0] != 0 || magic[1] != 0)
    idx_fail(s.path, "bad magic number: expected 00 00 <type> <ndims>, found " + hex_bytes(magic, 4) +
                         (s.gzip ? " after gzip decompression" : "") + " (not an IDX file?)");
  const auto info = idx_type_info(magic[2]);
  if (!info)
    idx_fail(s.path, "unsupported element type 0x" + hex_bytes(magic + 2, 1) +
                         " (supported: 08 uint8, 09 int8, 0b int16, 0c int32, 0d float32, 0e float64)");
  const std::uint8_t ndims = magic[3];
  if (ndims == 0 || ndims > options.max_dims)
    idx_fail(s.path, "absurd header: declares " + std::to_string(ndims) + " dimensions (supported: 1 to " +
                         std::to_string(options.max_dims) + ")");

  IdxHeader h;
  h.type = static_cast<IdxType>(magic[2]);
  h.header_bytes = 4 + 4 * std::uint64_t{ndims};
  std::vector<unsigned char> raw(4 * std::size_t{ndims});
  const auto got_dims = s.read(raw.data(), raw.size());
  if (got_dims < raw.size())
    idx_fail(s.path, "truncated header: expected " + std::to_string(raw.size()) + " bytes of dimension sizes, found " +
                         std::to_string(got_dims) + s.early_end_note());
  bool overflow = false;
  std::uint64_t numel = 1;
  for (std::size_t d = 0; d < ndims; ++d) {
    const std::uint32_t v = (std::uint32_t{raw[4 * d]} << 24) | (std::uint32_t{raw[4 * d + 1]} << 16) |
                            (std::uint32_t{raw[4 * d + 2]} << 8) | std::uint32_t{raw[4 * d + 3]};
    h.dims.push_back(static_cast<std::int64_t>(v));
    if (v != 0 && numel > std::numeric_limits<std::uint64_t>::max() / v) overflow = true;
    else numel *= v;
  }
  if (!overflow && numel > std::numeric_limits<std::uint64_t>::max() / info->element_size) overflow = true;
  if (overflow || numel * info->element_size > options.max_bytes)
    idx_fail(s.path, "absurd dimensions " + dims_string(h.dims) + " of " + info->name + ": " +
                         (overflow ? std::string("the data size overflows 64 bits")
                                   : std::to_string(numel * info->element_size) + " bytes of data") +
                         ", more than the limit of " + std::to_string(options.max_bytes) +
                         " bytes (IdxReadOptions::max_bytes)");
  h.numel = numel;
  h.data_bytes = numel * info->element_size;
  return h;
}

inline std::string declared(const IdxHeader& h) {
  return std::string(idx_type_info(static_cast<std::uint8_t>(h.type))->name) + " " + dims_string(h.dims) + " = " +
         std::to_string(h.data_bytes) + " data bytes";
}

[[noreturn]] inline void idx_truncated(IdxStream& s, const IdxHeader& h, std::uint64_t found) {
  idx_fail(s.path, "truncated: header declares " + declared(h) + ", expected " + std::to_string(h.data_bytes) +
                       " bytes but found " + std::to_string(found) + s.early_end_note());
}

[[noreturn]] inline void idx_trailing(IdxStream& s, const IdxHeader& h, std::uint64_t extra) {
  idx_fail(s.path, "trailing garbage: " + std::to_string(extra) + " bytes after the " + declared(h) +
                       " the header declares (pass IdxReadOptions{.allow_trailing_bytes = true} to accept)");
}

/// Converts big-endian elements of `size` bytes, in place, to the host's byte order.
inline void big_endian_to_host(void* data, std::uint64_t count, std::size_t size) {
  if constexpr (std::endian::native == std::endian::big) return;
  if (size <= 1) return;
  auto* p = static_cast<unsigned char*>(data);
  for (std::uint64_t i = 0; i < count; ++i, p += size) std::reverse(p, p + size);
}

}  // namespace detail

/// Reads just the header of an IDX file (plain or gzip-compressed), checking magic, type and dimensions.
/// Throws std::runtime_error ("composer: IDX file '<path>': ...") as `read_idx` does. Counterpart: the header
/// part of torchvision's `read_sn3_pascalvincent_tensor`.
inline IdxHeader read_idx_header(const std::string& path, const IdxReadOptions& options = {}) {
  auto s = detail::open_idx(path);
  return detail::parse_idx_header(s, options);
}

/// True when the file starts with the gzip magic bytes 1f 8b (whatever its name). Throws std::runtime_error
/// if it cannot be opened. Counterpart: none (torchvision decides by the `.gz` extension).
inline bool is_gzip_file(const std::string& path) { return detail::open_idx(path).gzip; }

/// Reads a whole IDX file into a tensor of the file's shape and element type (uint8 files give at::kByte),
/// converting big-endian elements to host order. Gzip compression is detected by the 1f 8b magic bytes, not the
/// file name. Throws std::runtime_error, message "composer: IDX file '<path>': ...", when the file is missing or
/// unreadable, has a bad magic number, an unsupported element type, absurd dimensions, fewer data bytes than its
/// header declares (both counts given) or, unless allowed, bytes after the data. Counterpart: torchvision's
/// `torchvision.datasets.mnist.read_sn3_pascalvincent_tensor`.
inline at::Tensor read_idx(const std::string& path, const IdxReadOptions& options = {}) {
  auto s = detail::open_idx(path);
  const IdxHeader h = detail::parse_idx_header(s, options);
  const auto info = *detail::idx_type_info(static_cast<std::uint8_t>(h.type));
  const auto opts = at::TensorOptions().dtype(info.scalar_type);

  at::Tensor out;
  if (!s.gzip) {
    // The on-disk size is the data size: check it before allocating anything.
    const std::uint64_t available = s.file_size - std::min(s.file_size, h.header_bytes);
    if (available < h.data_bytes) detail::idx_truncated(s, h, available);
    if (available > h.data_bytes && !options.allow_trailing_bytes)
      detail::idx_trailing(s, h, available - h.data_bytes);
    out = at::empty(h.dims, opts);
    const auto got = s.read(out.data_ptr(), h.data_bytes);
    if (got < h.data_bytes) detail::idx_truncated(s, h, got);
  } else {
    // The decompressed size is unknown until read: grow a buffer as data arrives, so that a header declaring
    // far more data than the file holds costs no more memory than the data actually present.
    std::vector<unsigned char> buffer;
    std::uint64_t got = 0;
    std::uint64_t capacity = std::min<std::uint64_t>(h.data_bytes, std::uint64_t{1} << 24);
    for (;;) {
      buffer.resize(capacity);
      got += s.read(buffer.data() + got, capacity - got);
      if (got < capacity || capacity == h.data_bytes) break;
      capacity = std::min<std::uint64_t>(h.data_bytes, capacity * 2);
    }
    if (got < h.data_bytes) detail::idx_truncated(s, h, got);
    if (!options.allow_trailing_bytes) {
      const auto extra = s.count_rest();
      if (extra > 0) detail::idx_trailing(s, h, extra);
    }
    out = at::empty(h.dims, opts);
    if (h.data_bytes > 0) std::memcpy(out.data_ptr(), buffer.data(), h.data_bytes);
  }
  detail::big_endian_to_host(out.data_ptr(), h.numel, info.element_size);
  return out;
}

/// An images tensor and the labels tensor that goes with it, as read by `read_idx_pair`.
/// Counterpart: the `(data, targets)` attributes of torchvision's `MNIST` dataset.
struct IdxPair {
  at::Tensor images;  ///< the images file's tensor, e.g. uint8 [N, 28, 28]
  at::Tensor labels;  ///< the labels file's tensor, e.g. uint8 [N]
};

/// Reads an images IDX file and a labels IDX file and checks that they hold the same number of items (their first
/// dimension); the headers are compared before any data is read. Throws std::runtime_error naming both counts and
/// both paths on a mismatch, and as `read_idx` does otherwise. Counterpart: torchvision's `MNIST._load_data`.
inline IdxPair read_idx_pair(const std::string& images_path, const std::string& labels_path,
                             const IdxReadOptions& options = {}) {
  const auto images_header = read_idx_header(images_path, options);
  const auto labels_header = read_idx_header(labels_path, options);
  const auto n_images = images_header.dims.front();
  const auto n_labels = labels_header.dims.front();
  if (n_images != n_labels)
    throw std::runtime_error("composer: IDX image/label count mismatch: images file '" + images_path +
                             "' holds " + std::to_string(n_images) + " images but labels file '" +
                             labels_path + "' holds " + std::to_string(n_labels) + " labels");
  return IdxPair{read_idx(images_path, options), read_idx(labels_path, options)};
}

}  // namespace composer::data
