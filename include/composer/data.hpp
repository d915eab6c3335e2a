#pragma once
/// \file
/// The data layer (Composer counterpart: the dataloaders Composer's Trainer takes): `TensorLoader` (in-memory
/// batches, shuffled by seed and epoch), `AnyLoader` (any range of batches behind one type), the IDX reader,
/// the Fashion-MNIST dataset and text for language models (byte tokenizer, fortune files, next-token windows).

#include <composer/data/any_loader.hpp>
#include <composer/data/fashion_mnist.hpp>
#include <composer/data/idx.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/data/text_corpus.hpp>
