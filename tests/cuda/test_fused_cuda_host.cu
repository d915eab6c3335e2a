// The CUDA fused kernel's per-element code, run on the host: `process_chunk` and `target_value` are
// __host__ __device__, and the argument packing (`set_mixup`, `set_cutmix`, `set_cutout`, `set_normalize`,
// `set_geometry`) is the one the transform uses, so this checks the index arithmetic (the 32-bit divisions, the
// NCHW, channels-last and strided coordinates, the 8-element chunks, the vector, scalar and strided load modes)
// and the stage semantics against a naive per-pixel reference, on any machine with nvcc and no GPU.
// It needs the LibTorch 2.x headers but none of its libraries: nothing here calls into LibTorch.
#include <composer/kernels/fused_batch_cuda.cuh>

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace kd = composer::kernels::cuda::detail;
namespace cf = composer::functional;

namespace {

std::mt19937 rng(12345);
int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi - 1)(rng); }

enum class Storage { nchw, channels_last, transposed, sliced, misaligned };

/// A host buffer whose usable part starts on a 64-byte boundary plus `shift` elements.
template <class T>
struct Buffer {
  std::vector<unsigned char> bytes;
  T* data = nullptr;
  Buffer(int64_t count, int64_t shift) : bytes(static_cast<size_t>((count + shift) * sizeof(T) + 64)) {
    auto addr = reinterpret_cast<uintptr_t>(bytes.data());
    addr = (addr + 63) / 64 * 64;
    data = reinterpret_cast<T*>(addr) + shift;
  }
};

struct Params {
  int64_t n, c, h, w;
  float mixing;
  std::vector<int64_t> mix_perm, cut_perm;
  cf::BBox box;
  std::vector<cf::CutoutHole> holes;
  std::vector<double> mean, stddev;
};

Params random_params(int64_t n, int64_t c, int64_t h, int64_t w) {
  Params p{n, c, h, w, 0.0f, {}, {}, {0, 0, 0, 0}, {}, {}, {}};
  p.mixing = uniform(0, 3) == 0 ? 0.0f : static_cast<float>(uniform(1, 100)) / 200.0f;
  p.mix_perm.resize(static_cast<size_t>(n));
  p.cut_perm.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p.mix_perm[static_cast<size_t>(i)] = p.cut_perm[static_cast<size_t>(i)] = i;
  std::shuffle(p.mix_perm.begin(), p.mix_perm.end(), rng);
  std::shuffle(p.cut_perm.begin(), p.cut_perm.end(), rng);
  const int64_t x1 = uniform(0, h + 1);
  const int64_t y1 = uniform(0, w + 1);
  p.box = {x1, y1, uniform(x1, h + 1), uniform(y1, w + 1)};
  for (int i = 0; i < 3; ++i) {
    const int64_t r1 = uniform(0, h + 1);
    const int64_t c1 = uniform(0, w + 1);
    p.holes.push_back({r1, c1, uniform(r1, h + 1), uniform(c1, w + 1)});
  }
  p.holes.push_back({0, 0, std::min<int64_t>(2, h), w});  // the top rows, touching three borders
  for (int64_t ch = 0; ch < c; ++ch) {
    p.mean.push_back(static_cast<double>(uniform(-50, 50)) / 100.0);
    p.stddev.push_back(static_cast<double>(uniform(20, 150)) / 100.0);
  }
  return p;
}

template <class T>
T make_value(int64_t i) {
  if constexpr (std::is_same_v<T, uint8_t>) {
    return static_cast<uint8_t>((i * 37 + 11) % 256);
  } else {
    return T(static_cast<float>((i * 7919) % 1000) / 250.0f - 1.5f);
  }
}

/// Runs the kernel's chunk function over a whole batch in `storage` and compares every output element (and the
/// untouched elements around the output) with the naive reference. Returns the load mode used.
template <class In, class Out, unsigned kMask>
int check_batch(const Params& p, Storage storage) {
  constexpr bool kMix = (kMask & kd::kMixUpBit) != 0;
  constexpr bool kCut = (kMask & kd::kCutMixBit) != 0;
  constexpr bool kHole = (kMask & kd::kCutOutBit) != 0;
  constexpr bool kNorm = (kMask & kd::kNormalizeBit) != 0;
  const int64_t n = p.n, c = p.c, h = p.h, w = p.w;
  const int64_t sample = c * h * w;

  // Input storage and the strides (elements) of the logical [N, C, H, W] view.
  std::array<int64_t, 4> st{};
  int64_t extent = n * sample;
  kd::InputLayout layout = kd::InputLayout::nchw;
  switch (storage) {
    case Storage::nchw:
    case Storage::misaligned: st = {sample, h * w, w, 1}; break;
    case Storage::channels_last:
      st = {sample, 1, w * c, c};
      layout = kd::InputLayout::channels_last;
      break;
    case Storage::transposed:  // [N, C, W, H] memory
      st = {sample, h * w, 1, h};
      layout = kd::InputLayout::strided;
      break;
    case Storage::sliced:  // every other column of [N, C, H, 2W] memory
      st = {2 * sample, 2 * h * w, 2 * w, 2};
      extent = 2 * n * sample;
      layout = kd::InputLayout::strided;
      break;
  }
  const int64_t shift = storage == Storage::misaligned ? 1 : 0;
  Buffer<In> in(extent, shift);
  for (int64_t i = 0; i < extent; ++i) in.data[i] = make_value<In>(i + 3 * n);
  const float scale = std::is_same_v<In, uint8_t> ? 1.0f / 255.0f : 1.0f;
  auto x = [&](int64_t s, int64_t ch, int64_t r, int64_t col) {
    return static_cast<float>(in.data[s * st[0] + ch * st[1] + r * st[2] + col * st[3]]) * scale;
  };

  // The reference, in the output layout (channels-last for channels-last input, NCHW otherwise).
  const bool cl = layout == kd::InputLayout::channels_last;
  std::vector<float> expected(static_cast<size_t>(n * sample));
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t r = 0; r < h; ++r) {
        for (int64_t col = 0; col < w; ++col) {
          // MixUp on the whole batch, then CutMix pastes the partner's mixed pixel, then CutOut, then Normalize.
          auto mixed = [&](int64_t image) {
            float v = x(image, ch, r, col);
            if (kMix && p.mixing != 0.0f) {
              v = std::fma(v, 1.0f - p.mixing, x(p.mix_perm[static_cast<size_t>(image)], ch, r, col) * p.mixing);
            }
            return v;
          };
          const bool boxed = kCut && p.box.x1 <= r && r < p.box.x2 && p.box.y1 <= col && col < p.box.y2;
          float v = mixed(boxed ? p.cut_perm[static_cast<size_t>(s)] : s);
          if (kHole) {
            for (const cf::CutoutHole& hole : p.holes) {
              if (hole.y1 <= r && r < hole.y2 && hole.x1 <= col && col < hole.x2) v = 0.0f;
            }
          }
          if (kNorm) {
            const size_t k = static_cast<size_t>(ch);
            v = (v - static_cast<float>(p.mean[k])) * static_cast<float>(1.0 / p.stddev[k]);
          }
          const int64_t o = cl ? s * sample + (r * w + col) * c + ch : s * sample + (ch * h + r) * w + col;
          expected[static_cast<size_t>(o)] = v;
        }
      }
    }
  }

  // The kernel's arguments, packed as the transform packs them, and every chunk run on the host.
  // The output starts kVec elements into an aligned buffer (plus the misaligned storage's shift), with sentinels
  // on both sides.
  Buffer<Out> out(n * sample + 2 * kd::kVec + 1, 0);
  const Out sentinel = Out(-1234.0f);
  for (int64_t i = 0; i < n * sample + 2 * kd::kVec + 1; ++i) out.data[i] = sentinel;
  Out* const o = out.data + kd::kVec + shift;
  kd::ImageArgs a;
  if constexpr (kMix) kd::set_mixup(a, p.mixing, p.mix_perm.data());
  if constexpr (kCut) kd::set_cutmix(a, p.box, h, w, p.cut_perm.data());
  if constexpr (kHole) kd::set_cutout(a, p.holes, h, w);
  if constexpr (kNorm) kd::set_normalize(a, p.mean, p.stddev, c);
  kd::set_geometry(a, {n, c, h, w}, st, layout, in.data, sizeof(In), std::is_same_v<In, uint8_t>, o, sizeof(Out));
  for (int64_t s = 0; s < n; ++s) {
    for (uint32_t chunk = 0; chunk < a.chunks; ++chunk) {
      kd::process_chunk<In, Out, kMask>(a, a.mean, a.inv_std, s, chunk * kd::kVec);
    }
  }

  const double rtol = std::is_same_v<Out, float> ? 1e-6 : (std::is_same_v<Out, c10::Half> ? 1e-3 : 8e-3);
  int64_t bad = 0;
  double worst = 0.0;
  for (int64_t i = 0; i < n * sample; ++i) {
    const double got = static_cast<float>(o[i]);
    const double want = expected[static_cast<size_t>(i)];
    const double err = std::fabs(got - want);
    if (!(err <= 1e-6 + rtol * std::fabs(want))) {
      ++bad;
      worst = std::max(worst, err);
    }
  }
  CAPTURE(worst);
  CHECK(bad == 0);
  CHECK(static_cast<float>(o[-1]) == static_cast<float>(sentinel));          // nothing written before
  CHECK(static_cast<float>(o[n * sample]) == static_cast<float>(sentinel));  // nor after
  return a.mode;
}

template <unsigned kMask>
void check_all_dtypes(const Params& p, Storage storage, std::array<int, 3>& modes) {
  ++modes[static_cast<size_t>(check_batch<float, float, kMask>(p, storage))];
  ++modes[static_cast<size_t>(check_batch<uint8_t, c10::BFloat16, kMask>(p, storage))];
  ++modes[static_cast<size_t>(check_batch<uint8_t, float, kMask>(p, storage))];
  ++modes[static_cast<size_t>(check_batch<c10::Half, c10::Half, kMask>(p, storage))];
  ++modes[static_cast<size_t>(check_batch<c10::BFloat16, float, kMask>(p, storage))];
  ++modes[static_cast<size_t>(check_batch<float, c10::BFloat16, kMask>(p, storage))];
}

std::string message_of(void (*f)()) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST_CASE("cuda fused (host): the 32-bit division by a launch constant is exact below 2^31") {
  for (uint32_t d : {1u, 2u, 3u, 5u, 7u, 12u, 13u, 24u, 28u, 224u, 1000u, 65535u, 65536u, 100003u, (1u << 30) + 1u,
                     (1u << 31) - 1u}) {
    const kd::DivMod div(d);
    CAPTURE(d);
    int64_t bad = 0;
    for (uint32_t v = 0; v < 100000; ++v) bad += div.div(v) != v / d;
    for (int i = 0; i < 100000; ++i) {
      const auto v = static_cast<uint32_t>(rng()) & 0x7FFFFFFFu;
      bad += div.div(v) != v / d;
    }
    for (uint32_t v : {0x7FFFFFFFu, 0x7FFFFFFEu, d - 1, d, d + 1, 2 * d - 1, 2 * d}) {
      if (v < 0x80000000u) bad += div.div(v) != v / d;
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("cuda fused (host): every chunk equals the eager sequence for each stage set, layout and dtype") {
  std::array<int, 3> modes{};
  const std::vector<std::array<int64_t, 4>> shapes = {{1, 1, 1, 1},  {1, 3, 5, 7},  {3, 3, 5, 7},  {2, 1, 28, 28},
                                                      {4, 3, 17, 9}, {5, 2, 8, 33}, {7, 4, 1, 13}, {2, 3, 13, 1},
                                                      {3, 3, 16, 16}, {3, 5, 11, 24}, {2, 3, 32, 32}, {2, 4, 6, 2}};
  for (const auto& [n, c, h, w] : shapes) {
    for (Storage storage : {Storage::nchw, Storage::channels_last, Storage::transposed, Storage::sliced,
                            Storage::misaligned}) {
      for (int rep = 0; rep < 2; ++rep) {
        CAPTURE(n);
        CAPTURE(c);
        CAPTURE(h);
        CAPTURE(w);
        CAPTURE(static_cast<int>(storage));
        const Params p = random_params(n, c, h, w);
        check_all_dtypes<15>(p, storage, modes);  // MixUp, CutMix, CutOut, Normalize
        check_all_dtypes<0>(p, storage, modes);   // conversion only
        check_all_dtypes<1>(p, storage, modes);
        check_all_dtypes<2>(p, storage, modes);
        check_all_dtypes<3>(p, storage, modes);
        check_all_dtypes<4>(p, storage, modes);
        check_all_dtypes<8>(p, storage, modes);
        check_all_dtypes<13>(p, storage, modes);  // MixUp, CutOut, Normalize
      }
    }
  }
  // All three load modes were exercised.
  CHECK(modes[kd::kLoadVector] > 0);
  CHECK(modes[kd::kLoadScalar] > 0);
  CHECK(modes[kd::kLoadStrided] > 0);
}

TEST_CASE("cuda fused (host): targets are the smoothed mixes of MixUp and CutMix") {
  const int64_t n = 9;
  const int64_t k = 7;
  std::vector<int64_t> labels(n), mix_perm(n), cut_perm(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[static_cast<size_t>(i)] = uniform(-1, k);  // -1: an ignored row
    mix_perm[static_cast<size_t>(i)] = cut_perm[static_cast<size_t>(i)] = i;
  }
  std::shuffle(mix_perm.begin(), mix_perm.end(), rng);
  std::shuffle(cut_perm.begin(), cut_perm.end(), rng);
  const float m = 0.3f, area = 0.7f, s = 0.1f;
  kd::TargetArgs a;
  a.labels = labels.data();
  a.batch = n;
  a.classes = k;
  a.mix_perm = mix_perm.data();
  a.cut_perm = cut_perm.data();
  a.keep = 1.0f - m;
  a.take = m;
  a.area = area;
  a.on_scale = 1.0f - s;
  a.off = s / static_cast<float>(k);
  auto smooth = [&](int64_t label, int64_t cls) {
    return (label == cls ? 1.0f - s : 0.0f) + s / static_cast<float>(k);
  };
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t cls = 0; cls < k; ++cls) {
      auto mixed = [&](int64_t j) {
        return (1.0f - m) * smooth(labels[static_cast<size_t>(j)], cls) +
               m * smooth(labels[static_cast<size_t>(mix_perm[static_cast<size_t>(j)])], cls);
      };
      const int64_t partner = cut_perm[static_cast<size_t>(i)];
      CHECK(kd::target_value<0>(a, i, cls) == doctest::Approx(smooth(labels[static_cast<size_t>(i)], cls)));
      CHECK(kd::target_value<1>(a, i, cls) == doctest::Approx(mixed(i)));
      CHECK(kd::target_value<2>(a, i, cls) ==
            doctest::Approx(area * smooth(labels[static_cast<size_t>(i)], cls) +
                            (1.0f - area) * smooth(labels[static_cast<size_t>(partner)], cls)));
      CHECK(kd::target_value<3>(a, i, cls) == doctest::Approx(area * mixed(i) + (1.0f - area) * mixed(partner)));
    }
  }
}

TEST_CASE("cuda fused (host): the argument packing rejects boxes, holes and constants that do not fit") {
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_cutmix(a, {0, 0, 7, 8}, 6, 8, nullptr);
        }).find("bbox must satisfy 0 <= x1 <= x2 <= 6") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_cutout(a, {{0, 5, 2, 4}}, 6, 8);
        }).find("hole must satisfy") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_cutout(a, std::vector<cf::CutoutHole>(33, cf::CutoutHole{0, 0, 1, 1}), 6, 8);
        }).find("at most 32 non-empty CutOut holes") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_normalize(a, {0.1, 0.2}, {1.0, 1.0, 1.0}, 3);
        }).find("one entry per channel (3), got 2 and 3") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_normalize(a, {0.0, 0.0}, {1.0, 0.0}, 2);
        }).find("std finite and non-zero") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_normalize(a, std::vector<double>(65, 0.0), std::vector<double>(65, 1.0), 65);
        }).find("at most 64 channels") != std::string::npos);
  // Empty holes are dropped; an empty box switches CutMix off.
  kd::ImageArgs a;
  kd::set_cutout(a, {{0, 0, 0, 5}, {1, 1, 3, 3}, {2, 2, 2, 2}}, 6, 8);
  CHECK(a.num_holes == 1);
  kd::set_cutmix(a, {3, 2, 3, 6}, 6, 8, nullptr);
  CHECK_FALSE(a.cut_active);
}
