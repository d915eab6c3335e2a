#pragma once
/// \file
/// composer::io::FolderLock — an exclusive lock on a folder, held for an object's life, so that two runs never
/// write into one folder.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <utility>

#include <composer/io/files.hpp>

namespace composer::io {

/// Thrown when a folder is locked by another holder (another process, or another lock in this one).
struct FolderLockedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Holds an exclusive `flock(2)` on the file `<folder>/<name>` (created, with the holder's process id written in it)
/// from construction to destruction. The system releases it when the process ends, however it ends (a `kill -9`
/// too), so a crashed run never leaves its folder locked. An empty folder locks nothing.
class FolderLock {
 public:
  /// No lock.
  FolderLock() = default;
  /// Locks `folder` (created when missing) through its file `name`.
  /// \throws FolderLockedError naming the folder and the holder's process id when another holder has it;
  /// `FileError` when the folder or the lock file cannot be made.
  FolderLock(const std::string& folder, const std::string& name) {
    if (folder.empty()) return;
    create_directories(folder);
    path_ = join(folder, name);
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw FileError("create the lock file", path_, errno);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      std::string holder(32, '\0');
      const ssize_t n = ::pread(fd_, holder.data(), holder.size(), 0);
      holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
      ::close(fd_);
      fd_ = -1;
      if (error != EWOULDBLOCK) throw FileError("lock", path_, error);
      throw FolderLockedError("composer: the folder '" + folder + "' is in use by another run (process " +
                              (holder.empty() ? std::string("unknown") : holder) + " holds '" + path_ +
                              "'); give each run its own folder, or wait for that run to end");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      // The process id is only for the message another run prints: the lock holds without it.
    }
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  FolderLock(FolderLock&& other) noexcept : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}
  FolderLock& operator=(FolderLock&& other) noexcept {
    if (this != &other) {
      release();
      path_ = std::move(other.path_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  /// Releases the lock (the lock file stays: removing it could let two later runs lock two different files).
  ~FolderLock() { release(); }

  /// Whether a lock is held.
  bool held() const noexcept { return fd_ >= 0; }
  /// The lock file.
  const std::string& path() const noexcept { return path_; }

 private:
  void release() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string path_;
  int fd_ = -1;
};

}  // namespace composer::io
