#pragma once
/// \file
/// composer::CheckpointSaver — saving checkpoints into a folder at intervals, keeping the newest few and a
/// `latest` link to the newest.

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/io/files.hpp>
#include <composer/io/zip_integrity.hpp>
#include <composer/trainer/checkpoint_names.hpp>
#include <composer/trainer/interval.hpp>

namespace composer {

/// Saves `ep{E}-ba{B}-rank{R}.pt` into a folder every `interval` (in ep, ba, sp or tok) at BATCH_CHECKPOINT or
/// EPOCH_CHECKPOINT, once more at the end of training unless the last batch was just saved, points
/// `latest-rank{R}.pt` at the newest and deletes the oldest beyond `num_checkpoints_to_keep` (-1 keeps all).
/// The checkpoint itself is written by the function it is given. An empty folder saves nothing. Composer
/// counterpart: `composer.callbacks.CheckpointSaver`.
class CheckpointSaver {
 public:
  /// A saver that saves nothing.
  CheckpointSaver() = default;
  /// A saver into `folder` every `interval`, keeping `num_checkpoints_to_keep` (-1: all), for `rank`. Temporary
  /// files a killed run of `rank` left in the folder (`*-rank{R}.pt.tmp`, never complete) are removed: the folder
  /// is this run's (the Trainer holds its lock). With `writes` false (the ranks other than 0 of a data-parallel
  /// run), the saver decides when to save and calls its save function at the same points, so that every rank takes
  /// part in the checkpoint, but touches no file itself: rank 0 names, links and rotates the checkpoints.
  CheckpointSaver(std::string folder, Time interval, int num_checkpoints_to_keep, std::int64_t rank = 0,
                  bool writes = true)
      : folder_(std::move(folder)),
        interval_(interval),
        num_checkpoints_to_keep_(num_checkpoints_to_keep),
        rank_(rank),
        writes_(writes) {
    if (!enabled() || !writes_ || !io::is_directory(folder_)) return;
    const std::string suffix = "-rank" + std::to_string(rank) + ".pt.tmp";
    for (const auto& name : io::list_directory(folder_))
      if (name.size() > suffix.size() && name.ends_with(suffix)) {
        try {
          io::remove(io::join(folder_, name));
        } catch (const io::FileError&) {
        }
      }
  }

  /// The path of the `latest-rank{rank}.pt` link in `folder`, which the saver points at its newest checkpoint.
  /// Composer counterpart: `save_latest_filename`.
  static std::string latest_link(const std::string& folder, std::int64_t rank) {
    return io::join(folder, latest_link_name(rank));
  }

  /// The checkpoints `ep{E}-ba{B}-rank{rank}.pt` in `folder`, by batch count, oldest first (none when the folder
  /// does not exist).
  static std::vector<std::string> checkpoints_in(const std::string& folder, std::int64_t rank) {
    std::vector<std::pair<std::int64_t, std::string>> found;
    if (folder.empty() || !io::is_directory(folder)) return {};
    for (const auto& name : io::list_directory(folder))
      if (const auto parsed = parse_checkpoint_file_name(name); parsed && parsed->rank == rank)
        found.emplace_back(parsed->batch, io::join(folder, name));
    std::sort(found.begin(), found.end());
    std::vector<std::string> paths;
    for (auto& [batch, path] : found) paths.push_back(std::move(path));
    return paths;
  }

  /// The newest checkpoint a saver wrote into `folder` for `rank`: its `latest` link, when that leads to a file;
  /// otherwise (a run killed before it made the link, or a link made dangling) the checkpoint of the most batches
  /// whose records are whole; an empty string when there is none. Composer counterpart:
  /// `Trainer._get_autoresume_checkpoint`.
  static std::string latest_checkpoint(const std::string& folder, std::int64_t rank) {
    if (folder.empty()) return {};
    const std::string link = latest_link(folder, rank);
    try {
      if (io::file_type(link) == io::FileType::regular) return link;
      const auto candidates = checkpoints_in(folder, rank);
      for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
        try {
          io::verify_zip_records(*it);
          return *it;
        } catch (const io::ZipIntegrityError&) {
        }
      }
    } catch (const io::FileError&) {
    }
    return {};
  }

  /// Whether the saver has a folder to save into.
  bool enabled() const noexcept { return !folder_.empty(); }

  /// At BATCH_CHECKPOINT: saves with `save(path)` when the last batch crossed a multiple of an interval in ba, sp
  /// or tok.
  template <class Save>
  void batch_checkpoint(const State& state, Save&& save) {
    if (batch_interval_crossed(interval_, state.previous_timestamp, state.timestamp) && enabled())
      save_now(state, save);
  }

  /// At EPOCH_CHECKPOINT: saves with `save(path)` when the last epoch crossed a multiple of an epoch interval.
  template <class Save>
  void epoch_checkpoint(const State& state, Save&& save) {
    if (interval_crossed(interval_, TimeUnit::EPOCH, state.previous_timestamp, state.timestamp) && enabled())
      save_now(state, save);
  }

  /// At the end of `fit()`: saves with `save(path)` unless the current batch was saved already.
  template <class Save>
  void fit_end(const State& state, Save&& save) {
    if (enabled() && last_saved_batch_ != state.timestamp.batch().count()) save_now(state, save);
  }

  /// Records that the run was resumed at `batch` from a checkpoint, so that batch is not saved again at the end.
  void resumed_at(std::int64_t batch) noexcept { last_saved_batch_ = batch; }

  /// Records that the run was resumed at `batch` from the checkpoint `path`. When that checkpoint lies in the
  /// saver's folder, the run's checkpoints there up to `batch` count as this saver's, oldest first, so that
  /// `num_checkpoints_to_keep` rotates them away as the resumed run saves newer ones.
  void resumed_from(const std::string& path, std::int64_t batch, std::int64_t rank) {
    resumed_at(batch);
    if (!enabled() || !writes_ || !io::same_file(io::parent_path(path).empty() ? "." : io::parent_path(path), folder_)) return;
    saved_checkpoints_.clear();
    for (auto& checkpoint : checkpoints_in(folder_, rank))
      if (parse_checkpoint_file_name(io::file_name(checkpoint))->batch <= batch)
        saved_checkpoints_.push_back(std::move(checkpoint));
  }

  /// The checkpoints this saver keeps and rotates, oldest first: those it wrote and those `resumed_from` adopted.
  const std::vector<std::string>& saved_checkpoints() const noexcept { return saved_checkpoints_; }

 private:
  template <class Save>
  void save_now(const State& state, Save& save) {
    const std::string name =
        checkpoint_file_name(state.timestamp.epoch().count(), state.timestamp.batch().count(), rank_);
    const std::string path = io::join(folder_, name);
    save(path);
    last_saved_batch_ = state.timestamp.batch().count();
    if (!writes_) return;
    saved_checkpoints_.erase(std::remove(saved_checkpoints_.begin(), saved_checkpoints_.end(), path),
                             saved_checkpoints_.end());
    saved_checkpoints_.push_back(path);
    point_latest_at(name, rank_);
    drop_oldest();
  }

  void point_latest_at(const std::string& name, std::int64_t rank) const {
    const std::string link = latest_link(folder_, rank);
    const std::string tmp_link = link + ".tmp";
    try {  // the link is a convenience: a file system without links still gets its checkpoints
      io::remove(tmp_link);
      io::create_symlink(name, tmp_link);
      io::rename(tmp_link, link);
    } catch (const io::FileError&) {
    }
  }

  void drop_oldest() {
    while (num_checkpoints_to_keep_ >= 0 &&
           saved_checkpoints_.size() > static_cast<std::size_t>(num_checkpoints_to_keep_)) {
      try {
        io::remove(saved_checkpoints_.front());
      } catch (const io::FileError&) {
      }
      saved_checkpoints_.erase(saved_checkpoints_.begin());
    }
  }

  std::string folder_;
  Time interval_ = Time::from_epoch(1);
  int num_checkpoints_to_keep_ = -1;
  std::int64_t rank_ = 0;
  bool writes_ = true;
  std::int64_t last_saved_batch_ = -1;
  std::vector<std::string> saved_checkpoints_;
};

}  // namespace composer
