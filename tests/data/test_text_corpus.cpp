// Text data for language models: the byte tokenizer, the fortune-file reader (on a folder written here and on Debian's
// fortunes package when installed) and the next-token windows of make_language_model_data, against hand-built
// expectations.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/data/text_corpus.hpp>
#include <composer/io/files.hpp>

// Last: a LibTorch built with glog defines its own CHECK macros, which doctest's must override.
#include <doctest/doctest.h>

namespace text_corpus_test {

namespace io = composer::io;
using composer::data::ByteTokenizer;
using composer::data::LanguageModelData;
using composer::data::LanguageModelDataOptions;
using composer::data::make_language_model_data;
using composer::data::read_fortunes;
using Docs = std::vector<std::string>;
using V = std::vector<std::int64_t>;

// A fresh folder under the system temp folder, removed with its contents (composer::io, no std::filesystem) at the
// end.
struct TempFolder {
  std::string path;
  TempFolder() {
    static int counter = 0;
    path = io::join(io::temp_directory(),
                    "composer-text-corpus-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    io::remove_all(path);
    io::create_directories(path);
  }
  ~TempFolder() {
    try {
      io::remove_all(path);
    } catch (const io::FileError&) {
    }
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  std::string operator/(const std::string& name) const { return io::join(path, name); }
};

V values(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous().reshape({-1});
  return V(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
}

// The token ids of `text` computed independently of ByteTokenizer.
V bytes_of(const std::string& text) {
  V out;
  for (unsigned char c : text) out.push_back(c);
  return out;
}

// The byte stream of `docs[i]` for the given indices, each followed by '\n'.
std::string stream_of(const Docs& docs, const V& indices) {
  std::string s;
  for (auto i : indices) s += docs[static_cast<std::size_t>(i)] + "\n";
  return s;
}

// Ten documents of known lengths: "d0:" + i copies of a letter, so each is 3 + i bytes (4 + i with its '\n').
Docs ten_documents() {
  Docs docs;
  for (int i = 0; i < 10; ++i) {
    std::string doc = {'d', static_cast<char>('0' + i), ':'};
    for (int j = 0; j < i; ++j) doc += static_cast<char>('a' + i);
    docs.push_back(doc);
  }
  return docs;
}

TEST_CASE("text corpus: ByteTokenizer encodes bytes as int64 ids and decodes them back") {
  const ByteTokenizer tokenizer;
  static_assert(ByteTokenizer::vocab_size == 256);
  const at::Tensor ids = tokenizer.encode("Hi\n");
  CHECK((ids.scalar_type() == at::kLong));
  CHECK(ids.dim() == 1);
  CHECK(values(ids) == V{72, 105, 10});
  CHECK(tokenizer.decode(ids) == "Hi\n");
  CHECK(tokenizer.encode("").numel() == 0);
  CHECK(tokenizer.decode(tokenizer.encode("")).empty());

  // Every byte value, including those above 127 (UTF-8 continuation bytes) and NUL, round-trips.
  std::string all(256, '\0');
  for (int b = 0; b < 256; ++b) all[static_cast<std::size_t>(b)] = static_cast<char>(b);
  const at::Tensor all_ids = tokenizer.encode(all);
  CHECK(values(all_ids) == values(at::arange(256, at::kLong)));
  CHECK(tokenizer.decode(all_ids) == all);
  const std::string utf8 = "caf\xc3\xa9";  // "café"
  CHECK(values(tokenizer.encode(utf8)) == V{99, 97, 102, 195, 169});
  CHECK(tokenizer.decode(tokenizer.encode(utf8)) == utf8);
  // Other integer types decode too.
  CHECK(tokenizer.decode(at::tensor({72, 105}, at::kInt)) == "Hi");
  CHECK(tokenizer.decode(at::tensor({72, 105}, at::kByte)) == "Hi");
}

TEST_CASE("text corpus: ByteTokenizer refuses ids outside [0, 256) and non-vector tensors") {
  const ByteTokenizer tokenizer;
  CHECK_THROWS_WITH_AS(tokenizer.decode(at::tensor({72, 256, 10}, at::kLong)), doctest::Contains("token id 256"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(tokenizer.decode(at::tensor({-1}, at::kLong)), doctest::Contains("token id -1"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(tokenizer.decode(at::tensor({1.0, 2.0})), doctest::Contains("integer"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(tokenizer.decode(at::zeros({2, 2}, at::kLong)), doctest::Contains("1-D"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(tokenizer.decode(at::Tensor()), doctest::Contains("composer: "), std::invalid_argument);
}

TEST_CASE("text corpus: read_fortunes reads a folder's fortune files in name order") {
  TempFolder folder;
  // "b" is listed before "a" in neither order the system gives: the reader sorts by name.
  io::write_file(folder / "b", "Second file, first fortune.\n%\n\n\n  \nSecond file,\n\ttwo lines.\n\n%\n");
  io::write_file(folder / "a",
                 "\nFirst fortune.\n%\n%\n   \n%\n\tIndented line\n  -- Someone\n%\nLast fortune, no final newline");
  io::write_file(folder / "a.dat", "binary index, not text\n%\nnot a fortune\n");
  io::write_file(folder / ".hidden", "hidden\n%\nnot read\n");
  io::write_file(folder / "notes.txt", "a dotted name\n%\nnot read\n");
  io::create_symlink("a", folder / "a.u8");
  io::create_symlink("b", folder / "link");  // a link without a dot: skipped as a link
  io::create_directories(folder / "sub");
  io::write_file(folder / "sub/c", "in a subfolder\n");

  const Docs expected = {"First fortune.", "\tIndented line\n  -- Someone", "Last fortune, no final newline",
                         "Second file, first fortune.", "Second file,\n\ttwo lines."};
  CHECK(read_fortunes(folder.path) == expected);
  // One file on its own.
  CHECK(read_fortunes(folder / "b") == Docs{"Second file, first fortune.", "Second file,\n\ttwo lines."});
  // Windows line ends around the separators.
  io::write_file(folder / "crlf", "one\r\n%\r\ntwo\r\n");
  CHECK(read_fortunes(folder / "crlf") == Docs{"one\r", "two\r"});
}

TEST_CASE("text corpus: read_fortunes names the path it cannot use") {
  TempFolder folder;
  const std::string missing = folder / "no-such-folder";
  CHECK_THROWS_WITH_AS(read_fortunes(missing), doctest::Contains(missing.c_str()), std::runtime_error);
  CHECK_THROWS_WITH_AS(read_fortunes(missing), doctest::Contains("does not exist"), std::runtime_error);
  // The install hint is for the package's folder only (not checkable when it is installed).
  try {
    read_fortunes(missing);
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("fortunes package") == std::string::npos);
  }
  if (!io::exists(composer::data::default_fortunes_folder)) {
    CHECK_THROWS_WITH_AS(read_fortunes(), doctest::Contains("install Debian's fortunes package"), std::runtime_error);
  }

  // A folder with only an index, a link and a hidden file holds no fortune file.
  const std::string empty = folder / "empty";
  io::create_directories(empty);
  CHECK_THROWS_WITH_AS(read_fortunes(empty), doctest::Contains("holds no fortune file"), std::runtime_error);
  io::write_file(io::join(empty, "x.dat"), "index");
  io::write_file(io::join(empty, ".x"), "hidden");
  CHECK_THROWS_WITH_AS(read_fortunes(empty), doctest::Contains(empty.c_str()), std::runtime_error);

  // Fortune files holding only separators and blank lines: no text.
  const std::string blank = folder / "blank";
  io::create_directories(blank);
  io::write_file(io::join(blank, "one"), "%\n\n%\n  \n\t\n%\n");
  io::write_file(io::join(blank, "two"), "");
  CHECK_THROWS_WITH_AS(read_fortunes(blank), doctest::Contains("holds no text"), std::runtime_error);
  CHECK_THROWS_WITH_AS(read_fortunes(blank), doctest::Contains(blank.c_str()), std::runtime_error);
}

TEST_CASE("text corpus: make_language_model_data cuts each split's stream into shifted windows") {
  // Three documents, no held-out split: the stream "ab\ncde\nfghij\n" (13 bytes), windows of 4 tokens.
  const Docs docs = {"ab", "cde", "fghij"};
  const LanguageModelData data = make_language_model_data(
      docs, {.sequence_length = 3, .batch_size = 2, .heldout_fraction = 0.0, .seed = 7, .shuffle = false});
  CHECK(data.train_tokens == 13);
  CHECK(data.heldout_tokens == 0);
  CHECK(data.documents_train == 3);
  CHECK(data.documents_heldout == 0);
  CHECK(data.heldout_documents.empty());
  // 13 / 4 = 3 windows "ab\nc", "de\nf", "ghij"; the final "\n" is dropped.
  const at::Tensor x = data.train.inputs(), y = data.train.targets();
  CHECK((x.scalar_type() == at::kLong));
  CHECK((y.scalar_type() == at::kLong));
  CHECK(x.sizes().vec() == V{3, 3});
  CHECK(y.sizes().vec() == V{3, 3});
  CHECK(values(x) == bytes_of("ab\nde\nghi"));
  CHECK(values(y) == bytes_of("b\nce\nfhij"));
  CHECK(data.train.size() == 2);  // batches of 2: 2 + 1 (drop_last is off)
  CHECK(data.heldout.num_samples() == 0);
  CHECK(data.heldout.size() == 0);

  // Unshuffled, the batches are the windows in order.
  std::vector<V> batches;
  for (const auto& batch : data.train) {
    CHECK(values(batch.targets.narrow(1, 0, 2)) == values(batch.inputs.narrow(1, 1, 2)));
    batches.push_back(values(batch.inputs));
  }
  CHECK(batches == std::vector<V>{bytes_of("ab\nde\n"), bytes_of("ghi")});

  // sequence_length 1: 13 / 2 = 6 pairs "ab", "\nc", "de", "\nf", "gh", "ij".
  const auto pairs = make_language_model_data(docs, {.sequence_length = 1, .batch_size = 4, .heldout_fraction = 0.0});
  CHECK(pairs.train.inputs().sizes().vec() == V{6, 1});
  CHECK(values(pairs.train.inputs()) == bytes_of("a\nd\ngi"));
  CHECK(values(pairs.train.targets()) == bytes_of("bcefhj"));
}

TEST_CASE("text corpus: make_language_model_data holds out a seeded choice of documents") {
  const Docs docs = ten_documents();  // document i has 4 + i bytes with its '\n'
  const LanguageModelDataOptions options{.sequence_length = 4, .batch_size = 3, .heldout_fraction = 0.25, .seed = 1};
  const LanguageModelData data = make_language_model_data(docs, options);

  // round(0.25 * 10) = 3 documents held out (round half away from zero of 2.5), 7 for training.
  CHECK(data.documents_heldout == 3);
  CHECK(data.documents_train == 7);
  REQUIRE(data.heldout_documents.size() == 3);
  CHECK(std::is_sorted(data.heldout_documents.begin(), data.heldout_documents.end()));
  V train_documents;
  for (std::int64_t i = 0; i < 10; ++i)
    if (std::find(data.heldout_documents.begin(), data.heldout_documents.end(), i) == data.heldout_documents.end())
      train_documents.push_back(i);
  CHECK(train_documents.size() == 7);
  // No document in both splits, and every document in one.
  std::set<std::int64_t> all(data.heldout_documents.begin(), data.heldout_documents.end());
  all.insert(train_documents.begin(), train_documents.end());
  CHECK(all.size() == 10);

  // Each split is its documents' stream, in input order, cut into windows of 5 tokens.
  const std::string train_stream = stream_of(docs, train_documents);
  const std::string heldout_stream = stream_of(docs, data.heldout_documents);
  CHECK(data.train_tokens == static_cast<std::int64_t>(train_stream.size()));
  CHECK(data.heldout_tokens == static_cast<std::int64_t>(heldout_stream.size()));
  CHECK(data.train_tokens + data.heldout_tokens == 4 * 10 + 45);
  const std::int64_t train_windows = data.train_tokens / 5, heldout_windows = data.heldout_tokens / 5;
  CHECK(data.train.num_samples() == train_windows);
  CHECK(data.heldout.num_samples() == heldout_windows);
  CHECK(data.train.size() == (train_windows + 2) / 3);
  CHECK(data.heldout.size() == (heldout_windows + 2) / 3);
  // Window k of a split covers stream bytes [5k, 5k + 5): inputs the first 4, targets the last 4.
  auto check_windows = [](const composer::data::TensorLoader& loader, const std::string& stream) {
    const V x = values(loader.inputs()), y = values(loader.targets());
    const V bytes = bytes_of(stream);
    REQUIRE(x.size() == static_cast<std::size_t>(loader.num_samples() * 4));
    for (std::int64_t k = 0; k < loader.num_samples(); ++k)
      for (std::int64_t j = 0; j < 4; ++j) {
        CHECK(x[static_cast<std::size_t>(4 * k + j)] == bytes[static_cast<std::size_t>(5 * k + j)]);
        CHECK(y[static_cast<std::size_t>(4 * k + j)] == bytes[static_cast<std::size_t>(5 * k + j + 1)]);
      }
  };
  check_windows(data.train, train_stream);
  check_windows(data.heldout, heldout_stream);

  // The train loader shuffles with the seed; the held-out one does not.
  CHECK(data.train.options().shuffle);
  CHECK(data.train.options().seed == 1);
  CHECK_FALSE(data.train.options().drop_last);
  CHECK_FALSE(data.heldout.options().shuffle);
  CHECK(values(data.heldout.sample_order(0)) == values(at::arange(heldout_windows, at::kLong)));

  // The same seed gives the same split; some other seed a different one.
  const LanguageModelData again = make_language_model_data(docs, options);
  CHECK(again.heldout_documents == data.heldout_documents);
  CHECK(values(again.train.inputs()) == values(data.train.inputs()));
  bool differs = false;
  for (std::uint64_t seed = 2; seed < 6 && !differs; ++seed) {
    LanguageModelDataOptions other = options;
    other.seed = seed;
    differs = make_language_model_data(docs, other).heldout_documents != data.heldout_documents;
  }
  CHECK(differs);

  // A small positive fraction still holds out one document.
  const auto one = make_language_model_data(docs, {.sequence_length = 2, .batch_size = 1, .heldout_fraction = 0.01});
  CHECK(one.documents_heldout == 1);
  CHECK(one.documents_train == 9);
}

TEST_CASE("text corpus: make_language_model_data refuses bad options and too little text") {
  const Docs docs = ten_documents();
  CHECK_THROWS_WITH_AS(make_language_model_data({}, {}), doctest::Contains("no document"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(make_language_model_data(docs, {.sequence_length = 0}), doctest::Contains("sequence_length"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(make_language_model_data(docs, {.sequence_length = 4, .batch_size = 0}),
                       doctest::Contains("batch_size"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(make_language_model_data(docs, {.sequence_length = 4, .heldout_fraction = 1.0}),
                       doctest::Contains("heldout_fraction"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(make_language_model_data(docs, {.sequence_length = 4, .heldout_fraction = -0.1}),
                       doctest::Contains("heldout_fraction"), std::invalid_argument);

  // "ab\ncde\n" is 7 tokens: a window of 8 does not fit.
  CHECK_THROWS_WITH_AS(make_language_model_data({"ab", "cde"}, {.sequence_length = 7, .heldout_fraction = 0.0}),
                       doctest::Contains("train split has 7 tokens from 2 document(s), fewer than the 8"),
                       std::invalid_argument);
  // Exactly one window fits.
  CHECK(make_language_model_data({"ab", "cde"}, {.sequence_length = 6, .heldout_fraction = 0.0}).train.num_samples() ==
        1);
  // The held-out choice depends on the seed and the number of documents only: find which of two documents seed 3
  // holds out, then make that one too short ("x\n", 2 tokens against a window of 4).
  const LanguageModelDataOptions halves{.sequence_length = 3, .heldout_fraction = 0.5, .seed = 3};
  const auto split = make_language_model_data({"first document", "second document"}, halves);
  REQUIRE(split.heldout_documents.size() == 1);
  Docs short_heldout = {"first document", "second document"};
  short_heldout[static_cast<std::size_t>(split.heldout_documents[0])] = "x";
  CHECK_THROWS_WITH_AS(make_language_model_data(short_heldout, halves),
                       doctest::Contains("held-out split has 2 tokens from 1 document(s), fewer than the 4"),
                       std::invalid_argument);
  Docs short_train = {"x", "x"};
  short_train[static_cast<std::size_t>(split.heldout_documents[0])] = "a long enough document";
  CHECK_THROWS_WITH_AS(make_language_model_data(short_train, halves),
                       doctest::Contains("train split has 2 tokens from 1 document(s), fewer than the 4"),
                       std::invalid_argument);
}

TEST_CASE("text corpus: Debian's fortunes give a 2 MB corpus split into loaders") {
  if (!io::is_directory(composer::data::default_fortunes_folder)) {
    MESSAGE("skipped: " << composer::data::default_fortunes_folder << " is missing (apt-get install fortunes)");
    return;
  }
  const Docs docs = read_fortunes();
  std::int64_t bytes = 0, empty_or_separator = 0;
  for (const auto& doc : docs) {
    bytes += static_cast<std::int64_t>(doc.size());
    if (doc.empty() || doc == "%" || doc.rfind("%\n", 0) == 0) ++empty_or_separator;
  }
  CHECK(empty_or_separator == 0);
  MESSAGE(docs.size() << " fortunes, " << bytes << " bytes");
  CHECK(docs.size() > 10000);
  CHECK(bytes > 2000000);
  // The package's first file is `art`, whose first fortune is known.
  CHECK(docs.front().rfind("7:30, Channel 5: The Bionic Dog", 0) == 0);

  const LanguageModelData data =
      make_language_model_data(docs, {.sequence_length = 128, .batch_size = 32, .heldout_fraction = 0.1, .seed = 0});
  CHECK(data.documents_train > 0);
  CHECK(data.documents_heldout > 0);
  CHECK(data.documents_train + data.documents_heldout == static_cast<std::int64_t>(docs.size()));
  CHECK(data.train_tokens + data.heldout_tokens == bytes + static_cast<std::int64_t>(docs.size()));
  CHECK(data.train.num_samples() == data.train_tokens / 129);
  CHECK(data.heldout.num_samples() == data.heldout_tokens / 129);
  CHECK(data.heldout.num_samples() > 0);
  const composer::Batch batch = *data.train.begin();  // a copy: the iterator is a temporary
  CHECK(batch.inputs.sizes().vec() == V{32, 128});
  CHECK(batch.targets.sizes().vec() == V{32, 128});
  CHECK(values(batch.targets.narrow(1, 0, 127)) == values(batch.inputs.narrow(1, 1, 127)));
  CHECK(batch.inputs.min().item<std::int64_t>() >= 0);
  CHECK(batch.inputs.max().item<std::int64_t>() < 256);
}

}  // namespace text_corpus_test
