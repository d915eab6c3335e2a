#pragma once
/// \file
/// composer::io::verify_zip_records — checks every record of a zip archive (LibTorch's checkpoint format) against
/// the CRC-32 its central directory stores, which LibTorch's own reader does not do.

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace composer::io {

/// A zip archive that is malformed, or one of whose records does not match its stored CRC-32.
struct ZipIntegrityError : std::runtime_error {
  /// The record at fault; empty when the archive's structure itself is broken.
  std::string record;
  /// An error about `record` (empty: about the archive).
  ZipIntegrityError(std::string record_name, const std::string& message)
      : std::runtime_error(message), record(std::move(record_name)) {}
};

namespace detail {
/// The CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) table, one entry per byte value.
constexpr std::array<std::uint32_t, 256> crc32_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
inline constexpr std::array<std::uint32_t, 256> crc32_lookup = crc32_table();

/// Little-endian unsigned integer of `bytes` bytes at `at` in `data`.
inline std::uint64_t read_le(const unsigned char* data, std::size_t at, int bytes) {
  std::uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | data[at + static_cast<std::size_t>(i)];
  return value;
}
}  // namespace detail

/// Continues the CRC-32 `crc` (0 to start) over `size` bytes. The zip format's checksum.
inline std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = detail::crc32_lookup[(crc ^ bytes[i]) & 0xFFU] ^ (crc >> 8);
  return ~crc;
}

/// Reads the central directory of the zip archive at `path` and checks each record stored uncompressed (every
/// record of an `OutputArchive`, so every record of a checkpoint): lying inside the file, its local header agreeing
/// with the directory on its name, and the CRC-32 of its bytes equal to the stored one. A deflated record (the
/// TorchScript code `torch::save` adds for a module) is only checked to lie inside the file. Returns the number of
/// records whose CRC-32 was checked.
/// \throws ZipIntegrityError naming the record at fault (or the archive, when its structure is broken).
inline std::size_t verify_zip_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ZipIntegrityError("", "cannot open '" + path + "' for reading");
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  const auto read_at = [&](std::uint64_t offset, std::size_t size, const std::string& what) {
    if (offset > file_size || size > file_size - offset)
      throw ZipIntegrityError("", "'" + path + "' is truncated: " + what + " lies past its end");
    std::vector<unsigned char> bytes(size);
    in.seekg(static_cast<std::streamoff>(offset));
    if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
      throw ZipIntegrityError("", "cannot read " + what + " of '" + path + "'");
    return bytes;
  };

  // The end-of-central-directory record: 22 bytes plus a comment of at most 65535, at the end of the file.
  const std::uint64_t tail_size = std::min<std::uint64_t>(file_size, 22 + 65535);
  const std::vector<unsigned char> tail = read_at(file_size - tail_size, tail_size, "the end of the archive");
  std::int64_t eocd = -1;
  for (std::int64_t i = static_cast<std::int64_t>(tail_size) - 22; i >= 0; --i)
    if (detail::read_le(tail.data(), static_cast<std::size_t>(i), 4) == 0x06054b50U) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw ZipIntegrityError("", "'" + path + "' is not a zip archive (no end of central directory)");
  const auto e = static_cast<std::size_t>(eocd);
  std::uint64_t entries = detail::read_le(tail.data(), e + 10, 2);
  std::uint64_t directory_size = detail::read_le(tail.data(), e + 12, 4);
  std::uint64_t directory_offset = detail::read_le(tail.data(), e + 16, 4);
  const std::uint64_t eocd_offset = file_size - tail_size + static_cast<std::uint64_t>(eocd);
  if (entries == 0xFFFFU || directory_size == 0xFFFFFFFFU || directory_offset == 0xFFFFFFFFU) {
    // ZIP64: a locator (20 bytes) just before the record points at the ZIP64 end of central directory.
    if (eocd_offset < 20) throw ZipIntegrityError("", "'" + path + "' has a ZIP64 marker but no ZIP64 locator");
    const auto locator = read_at(eocd_offset - 20, 20, "the ZIP64 locator");
    if (detail::read_le(locator.data(), 0, 4) != 0x07064b50U)
      throw ZipIntegrityError("", "'" + path + "' has a ZIP64 marker but no ZIP64 locator");
    const auto zip64 = read_at(detail::read_le(locator.data(), 8, 8), 56, "the ZIP64 end of central directory");
    if (detail::read_le(zip64.data(), 0, 4) != 0x06064b50U)
      throw ZipIntegrityError("", "'" + path + "' has a broken ZIP64 end of central directory");
    entries = detail::read_le(zip64.data(), 32, 8);
    directory_size = detail::read_le(zip64.data(), 40, 8);
    directory_offset = detail::read_le(zip64.data(), 48, 8);
  }
  const std::vector<unsigned char> directory = read_at(directory_offset, directory_size, "the central directory");

  std::vector<unsigned char> buffer(1 << 20);
  std::size_t at = 0;
  std::size_t checked = 0;
  for (std::uint64_t n = 0; n < entries; ++n) {
    if (at + 46 > directory.size() || detail::read_le(directory.data(), at, 4) != 0x02014b50U)
      throw ZipIntegrityError("", "'" + path + "' has a broken central directory (entry " + std::to_string(n) + ")");
    const auto method = detail::read_le(directory.data(), at + 10, 2);
    const auto stored_crc = static_cast<std::uint32_t>(detail::read_le(directory.data(), at + 16, 4));
    std::uint64_t compressed = detail::read_le(directory.data(), at + 20, 4);
    std::uint64_t uncompressed = detail::read_le(directory.data(), at + 24, 4);
    const auto name_length = detail::read_le(directory.data(), at + 28, 2);
    const auto extra_length = detail::read_le(directory.data(), at + 30, 2);
    const auto comment_length = detail::read_le(directory.data(), at + 32, 2);
    std::uint64_t local_offset = detail::read_le(directory.data(), at + 42, 4);
    if (at + 46 + name_length + extra_length + comment_length > directory.size())
      throw ZipIntegrityError("", "'" + path + "' has a broken central directory (entry " + std::to_string(n) + ")");
    const std::string name(reinterpret_cast<const char*>(directory.data() + at + 46), name_length);
    // ZIP64 sizes and offset, in that order, for the fields set to 0xFFFFFFFF.
    for (std::size_t x = at + 46 + name_length; x + 4 <= at + 46 + name_length + extra_length;) {
      const auto id = detail::read_le(directory.data(), x, 2);
      const auto size = detail::read_le(directory.data(), x + 2, 2);
      if (id == 0x0001U) {
        std::size_t field = x + 4;
        for (std::uint64_t* value : {&uncompressed, &compressed, &local_offset})
          if (*value == 0xFFFFFFFFU && field + 8 <= x + 4 + size) *value = detail::read_le(directory.data(), field, 8), field += 8;
      }
      x += 4 + size;
    }
    at += 46 + name_length + extra_length + comment_length;
    // Deflated records (LibTorch compresses the TorchScript code of a module saved with torch::save) would need an
    // inflater to check: their place in the file is checked, their bytes are not. Every record of a checkpoint
    // this library writes is stored.
    if (method == 8) {
      if (local_offset > file_size || compressed > file_size - local_offset)
        throw ZipIntegrityError(name, "'" + path + "' is truncated: record '" + name + "' lies past its end");
      continue;
    }
    if (method != 0)
      throw ZipIntegrityError(name, "'" + path + "' record '" + name + "' uses compression method " +
                                        std::to_string(method) + ", which no LibTorch archive uses");
    ++checked;
    if (compressed != uncompressed)
      throw ZipIntegrityError(name, "'" + path + "' record '" + name + "' has different stored and data sizes");
    const auto local = read_at(local_offset, 30, "the local header of record '" + name + "'");
    if (detail::read_le(local.data(), 0, 4) != 0x04034b50U)
      throw ZipIntegrityError(name, "'" + path + "' record '" + name + "' has no local header where the directory says");
    const auto local_name_length = detail::read_le(local.data(), 26, 2);
    const auto local_extra_length = detail::read_le(local.data(), 28, 2);
    const auto local_name = read_at(local_offset + 30, local_name_length, "the name of record '" + name + "'");
    if (std::string_view(reinterpret_cast<const char*>(local_name.data()), local_name.size()) != name)
      throw ZipIntegrityError(name, "'" + path + "' record '" + name + "' has another name in its local header");
    std::uint64_t offset = local_offset + 30 + local_name_length + local_extra_length;
    if (offset > file_size || compressed > file_size - offset)
      throw ZipIntegrityError(name, "'" + path + "' is truncated: record '" + name + "' lies past its end");
    std::uint32_t crc = 0;
    in.seekg(static_cast<std::streamoff>(offset));
    for (std::uint64_t left = compressed; left > 0;) {
      const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
      if (!in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(chunk)))
        throw ZipIntegrityError(name, "cannot read record '" + name + "' of '" + path + "'");
      crc = crc32(crc, buffer.data(), chunk);
      left -= chunk;
    }
    if (crc != stored_crc)
      throw ZipIntegrityError(name, "'" + path + "' record '" + name + "' does not match its stored CRC-32: its bytes "
                                    "changed after it was written");
  }
  return checked;
}

}  // namespace composer::io
