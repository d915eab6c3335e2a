#pragma once
/// \file
/// The logger destinations: policies with `role == composer::Role::logger` that receive what is logged through
/// `composer::Logger` and draw or store it. Composer counterpart: `composer.loggers`.
///
/// - `composer::loggers::ProgressBar`: progress on the console, redrawn in place on a terminal, plain lines
///   elsewhere (`ProgressBarLogger`).
/// - `composer::loggers::MetricsFile`: every logged metric appended to a `.csv` or `.jsonl` file
///   (`FileLogger`); `scripts/plot_metrics.sh` plots a CSV one.

#include <composer/loggers/metrics_file.hpp>
#include <composer/loggers/progress_bar.hpp>
