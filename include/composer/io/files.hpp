#pragma once
/// \file
/// composer::io — the file operations the library needs (paths as strings, folders, renames, links, removal,
/// sizes), made with POSIX calls.
///
/// The library, its tests and examples do not use std::filesystem: PyPI's LibTorch 2.x (libtorch_cpu.so) exports
/// its own copy of libstdc++'s std::filesystem functions, and a program linked with it binds its std::filesystem
/// calls to that copy, some of which crash (pytorch/pytorch#133437). A check of the test suite
/// (`no_std_filesystem.*`) keeps it so.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace composer::io {

/// Thrown when a file operation fails. `what()` reads "composer: cannot <operation> '<path>': <reason>", the reason
/// being the system's text for the error (`std::strerror`).
class FileError : public std::runtime_error {
 public:
  /// `operation` is a verb phrase ("create the folder"), `error` an `errno` value.
  FileError(const std::string& operation, std::string path, int error)
      : std::runtime_error("composer: cannot " + operation + " '" + path + "': " + std::strerror(error)),
        path_(std::move(path)),
        error_(error) {}
  /// The path the operation failed on.
  const std::string& path() const noexcept { return path_; }
  /// The `errno` value of the failure.
  int error_code() const noexcept { return error_; }
  /// The system's text for the error, e.g. "No such file or directory".
  std::string reason() const { return std::strerror(error_); }

 private:
  std::string path_;
  int error_;
};

/// `name` inside `folder`: "runs" + "metrics.csv" gives "runs/metrics.csv" (one separator, none added after a
/// trailing one; an empty folder gives `name`, an absolute `name` is returned as it is), as `std::filesystem::path`'s
/// `operator/` does.
inline std::string join(std::string_view folder, std::string_view name) {
  if (folder.empty() || name.starts_with('/')) return std::string(name);
  std::string out(folder);
  if (!out.ends_with('/')) out += '/';
  out += name;
  return out;
}

/// The path without its last component, as `std::filesystem::path::parent_path`: "a/b/c" gives "a/b", "a/b/" gives
/// "a/b", "/a" gives "/", "/" gives "/" and a bare name gives "".
inline std::string parent_path(std::string_view path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string_view::npos) return {};
  if (path.find_first_not_of('/') == std::string_view::npos) return std::string(path);
  auto end = slash;
  while (end > 0 && path[end - 1] == '/') --end;
  return end == 0 ? std::string("/") : std::string(path.substr(0, end));
}

/// The last component of the path ("c" for "a/b/c", "" for "a/b/"), as `std::filesystem::path::filename`.
inline std::string file_name(std::string_view path) {
  const auto slash = path.find_last_of('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

/// The file name's extension with its dot (".csv" for "runs/metrics.csv"); "" when the name has no dot but a leading
/// one (".profile"), or is "." or "..". As `std::filesystem::path::extension`.
inline std::string extension(std::string_view path) {
  const std::string name = file_name(path);
  if (name == "." || name == "..") return {};
  const auto dot = name.find_last_of('.');
  return (dot == std::string::npos || dot == 0) ? std::string() : name.substr(dot);
}

/// What a path names (following symbolic links unless asked not to).
enum class FileType {
  not_found,  ///< nothing: the path or one of its folders does not exist
  regular,    ///< a regular file
  directory,  ///< a folder
  symlink,    ///< a symbolic link (only when links are not followed)
  other,      ///< a device, pipe or socket
};

/// What `path` names; `follow_links = false` reports a symbolic link itself. Throws `FileError` when the system cannot
/// tell (a folder that cannot be searched, a loop of links), rather than calling that "not found".
inline FileType file_type(const std::string& path, bool follow_links = true) {
  struct stat info {};
  if ((follow_links ? ::stat(path.c_str(), &info) : ::lstat(path.c_str(), &info)) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return FileType::not_found;
    throw FileError("inspect", path, errno);
  }
  if (S_ISREG(info.st_mode)) return FileType::regular;
  if (S_ISDIR(info.st_mode)) return FileType::directory;
  if (S_ISLNK(info.st_mode)) return FileType::symlink;
  return FileType::other;
}

/// Whether `path` names anything (a link counts if what it points to exists).
inline bool exists(const std::string& path) { return file_type(path) != FileType::not_found; }

/// Whether `path` names a folder (or a link to one).
inline bool is_directory(const std::string& path) { return file_type(path) == FileType::directory; }

/// Whether `path` names a regular file (or a link to one).
inline bool is_regular_file(const std::string& path) { return file_type(path) == FileType::regular; }

/// The size in bytes of the regular file `path`. Throws `FileError` when it is missing or not a regular file.
inline std::uint64_t file_size(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw FileError("get the size of", path, errno);
  if (!S_ISREG(info.st_mode)) throw FileError("get the size of", path, S_ISDIR(info.st_mode) ? EISDIR : EINVAL);
  return static_cast<std::uint64_t>(info.st_size);
}

/// The permission bits of `path` (`st_mode & 07777`: test them with `S_IXUSR` and the like). Throws `FileError`.
inline unsigned permissions(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw FileError("inspect", path, errno);
  return static_cast<unsigned>(info.st_mode) & 07777u;
}

/// Creates the folder `path` and any missing folders above it (mode 0777 less the umask), as `mkdir -p`. Returns
/// whether it created `path`; a folder already there is fine. Throws `FileError` naming the folder that cannot be
/// created, as `mkdir(2)` reports it: "File exists" when `path` is a file, "Not a directory" when a folder on the way
/// is a file.
inline bool create_directories(const std::string& path) {
  if (path.empty()) return false;
  switch (file_type(path)) {
    case FileType::directory:
      return false;
    case FileType::not_found:
      break;
    default:
      throw FileError("create the folder", path, EEXIST);
  }
  if (const std::string parent = parent_path(path); !parent.empty() && parent != path) {
    try {
      create_directories(parent);
    } catch (const FileError& error) {
      if (error.error_code() != EEXIST || error.path() != parent) throw;
      throw FileError("create the folder", path, ENOTDIR);
    }
  }
  if (::mkdir(path.c_str(), 0777) != 0) {
    const int error = errno;
    if (error == EEXIST && is_directory(path)) return false;  // made meanwhile by someone else
    throw FileError("create the folder", path, error);
  }
  return true;
}

/// Removes the file, link (not what it points to) or empty folder `path`. Returns false when there was nothing to
/// remove. Throws `FileError` otherwise (a folder that is not empty: "Directory not empty").
inline bool remove(const std::string& path) {
  const FileType type = file_type(path, /*follow_links=*/false);
  if (type == FileType::not_found) return false;
  if ((type == FileType::directory ? ::rmdir(path.c_str()) : ::unlink(path.c_str())) != 0) {
    if (errno == ENOENT) return false;
    throw FileError(type == FileType::directory ? "remove the folder" : "remove", path, errno);
  }
  return true;
}

/// The names of the entries of the folder `path` (without "." and ".."), in no particular order. Throws `FileError`.
inline std::vector<std::string> list_directory(const std::string& path) {
  DIR* folder = ::opendir(path.c_str());
  if (folder == nullptr) throw FileError("open the folder", path, errno);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(folder);
    if (entry == nullptr) break;
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int error = errno;
  ::closedir(folder);
  if (error != 0) throw FileError("read the folder", path, error);
  return names;
}

/// Whether `a` and `b` name the same existing file or folder (the same device and inode, links followed), as
/// `std::filesystem::equivalent`; false when either does not exist.
inline bool same_file(const std::string& a, const std::string& b) {
  struct stat first {}, second {};
  if (::stat(a.c_str(), &first) != 0 || ::stat(b.c_str(), &second) != 0) return false;
  return first.st_dev == second.st_dev && first.st_ino == second.st_ino;
}

/// Removes `path` and, for a folder, everything in it (links are removed, never followed), as `rm -rf`. Returns how
/// many files, links and folders were removed (0 when `path` did not exist). Throws `FileError` naming the entry that
/// could not be read or removed.
inline std::uint64_t remove_all(const std::string& path) {
  const FileType type = file_type(path, /*follow_links=*/false);
  if (type == FileType::not_found) return 0;
  std::uint64_t removed = 0;
  if (type == FileType::directory)
    for (const auto& name : list_directory(path)) removed += remove_all(join(path, name));
  return removed + (remove(path) ? 1 : 0);
}

/// Renames `from` to `to` in one step (`rename(2)`): an existing file `to` is replaced atomically, so readers see
/// either the old or the new file. Both must be on the same file system. Throws `FileError`.
inline void rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) throw FileError("rename '" + from + "' to", to, errno);
}

/// Writes `data` to the file `path` (created, or truncated), then flushes it to the storage device (`fsync`), so
/// that a later `rename` over another file never exposes a file whose data is not on disk. Every short or failed
/// write (a full disk: ENOSPC) is a `FileError`; the partly written file is left for the caller to remove.
inline void write_file(const std::string& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw FileError("create the file", path, errno);
  const auto fail = [&](const char* operation) {
    const int error = errno;
    ::close(fd);
    throw FileError(operation, path, error);
  };
  for (std::size_t written = 0; written < data.size();) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write the file");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) fail("flush the file");
  if (::close(fd) != 0) throw FileError("close the file", path, errno);
}

/// Creates the symbolic link `link` holding `target` (a path relative to the link's folder, or absolute). Throws
/// `FileError`, also when `link` exists.
inline void create_symlink(const std::string& target, const std::string& link) {
  if (::symlink(target.c_str(), link.c_str()) != 0) throw FileError("create the link", link, errno);
}

/// The target stored in the symbolic link `link`, as written (not resolved). Throws `FileError`.
inline std::string read_symlink(const std::string& link) {
  std::string target(256, '\0');
  for (;;) {
    const ssize_t length = ::readlink(link.c_str(), target.data(), target.size());
    if (length < 0) throw FileError("read the link", link, errno);
    if (static_cast<std::size_t>(length) < target.size()) {
      target.resize(static_cast<std::size_t>(length));
      return target;
    }
    target.resize(target.size() * 2);
  }
}

/// The folder for temporary files: the first of the environment variables TMPDIR, TMP, TEMP and TEMPDIR that is set,
/// else "/tmp" (as `std::filesystem::temp_directory_path`). Throws `FileError` when it is not a folder.
inline std::string temp_directory() {
  std::string path = "/tmp";
  for (const char* variable : {"TMPDIR", "TMP", "TEMP", "TEMPDIR"}) {
    if (const char* value = std::getenv(variable); value != nullptr && *value != '\0') {
      path = value;
      break;
    }
  }
  if (!is_directory(path)) throw FileError("use the temporary folder", path, ENOTDIR);
  return path;
}

}  // namespace composer::io
