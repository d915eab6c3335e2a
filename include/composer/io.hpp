#pragma once
/// \file
/// File operations on POSIX calls that checkpoints and loggers build on: folders, atomic renames, links and
/// temporary folders, each failure an `io::FileError` naming the path.

#include <composer/io/files.hpp>
