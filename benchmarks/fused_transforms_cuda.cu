// The CUDA fused batch transform against the eager ATen sequence and against the memory roof, on one GPU:
//   fused  composer::kernels::cuda::FusedBatchTransform<...>: one image launch and one target launch
//          (value checks off, as on the hot path);
//   eager  the same work as Composer's functional code does it, op by op, with ATen on the device (a literal
//          port: mixup_batch, cutmix_batch, cutout_batch with its mask, smooth_labels, then (x − mean)/std and
//          the cast to the output dtype);
//   roof   a device-to-device cudaMemcpyAsync moving the same number of bytes as the fused pass must move
//          (half read, half written): the best a pass over that memory can do on this GPU.
// Cases: batches 256x3x224x224 (1000 classes) and 128x3x32x32 (10 classes); float32 → float32 and
// uint8 → bfloat16; compositions MixUp, CutMix+LabelSmoothing and MixUp+CutOut+Normalize (every composition also
// produces its dense targets). Each iteration is timed with CUDA events on the current stream (UseManualTime).
// Counters: bytes_per_second (the fused pass's compulsory traffic over the iteration's time, for every variant, so
// that the variants compare directly), roof_fraction (roof time / this variant's time for the same bytes,
// measured in the same run) and, on the fused entries, max_abs_diff against the eager result.
#include <composer/kernels/fused_batch_cuda.cuh>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <benchmark/benchmark.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

namespace st = composer::kernels::stage;
namespace kc = composer::kernels::cuda;
namespace cf = composer::functional;

enum class Composition { mixup, cutmix_smoothing, mixup_cutout_normalize };

struct Case {
  Composition composition;
  bool u8_to_bf16;  // uint8 → bfloat16, otherwise float32 → float32
  int64_t n, c, h, w;
  int64_t classes;
};

const char* composition_name(Composition k) {
  switch (k) {
    case Composition::mixup: return "MixUp";
    case Composition::cutmix_smoothing: return "CutMix+LabelSmoothing";
    case Composition::mixup_cutout_normalize: return "MixUp+CutOut+Normalize";
  }
  return "?";
}

std::string case_name(const char* variant, const Case& c) {
  return std::string(variant) + "/" + composition_name(c.composition) + "/" + (c.u8_to_bf16 ? "u8_bf16" : "fp32") +
         "/" + std::to_string(c.n) + "x" + std::to_string(c.c) + "x" + std::to_string(c.h) + "x" +
         std::to_string(c.w);
}

at::ScalarType out_dtype(const Case& c) { return c.u8_to_bf16 ? at::kBFloat16 : at::kFloat; }

/// The bytes the fused pass must move: every input element read once (twice with MixUp: the partner too), every
/// output element written once, plus the labels read and the float32 targets written.
int64_t compulsory_bytes(const Case& c) {
  const int64_t numel = c.n * c.c * c.h * c.w;
  const int64_t in_size = c.u8_to_bf16 ? 1 : 4;
  const int64_t out_size = c.u8_to_bf16 ? 2 : 4;
  const int64_t reads = c.composition == Composition::cutmix_smoothing ? 1 : 2;
  return numel * (reads * in_size + out_size) + c.n * 8 + c.n * c.classes * 4;
}

/// One batch and every stage's parameters, on the device.
struct Batch {
  at::Tensor x;
  at::Tensor labels;
  at::Tensor perm;
  double mixing = 0.3;
  cf::BBox box{0, 0, 0, 0};
  std::vector<cf::CutoutHole> holes;
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> stddev = {0.229, 0.224, 0.225};
  double smoothing = 0.1;
};

Batch make_batch(const Case& c) {
  at::manual_seed(0);
  const at::Device dev(at::kCUDA, 0);
  Batch b;
  b.x = c.u8_to_bf16 ? at::randint(0, 256, {c.n, c.c, c.h, c.w}, at::TensorOptions().dtype(at::kByte).device(dev))
                     : at::rand({c.n, c.c, c.h, c.w}, at::TensorOptions().device(dev));
  b.labels = at::randint(0, c.classes, {c.n}, at::TensorOptions().dtype(at::kLong).device(dev));
  b.perm = at::randperm(c.n, at::TensorOptions().dtype(at::kLong).device(dev));
  b.box = cf::cutmix_rand_bbox(c.h, c.w, 0.6, c.h / 2, c.w / 3);  // Composer's default sampling, fixed centre
  b.holes = {cf::cutout_hole(c.h, c.w, c.h / 3, c.w / 2, cf::cutout_length_pixels(c.h, c.w, 0.5))};
  return b;
}

/// The eager sequence, as Composer's functional code writes it, for one composition.
std::pair<at::Tensor, at::Tensor> eager_step(const Batch& b, const Case& c) {
  at::Tensor x = b.x;
  if (c.u8_to_bf16) x = x.to(at::kFloat).div(255.0);
  at::Tensor y = at::one_hot(b.labels, c.classes).to(at::kFloat);  // ensure_targets_one_hot
  switch (c.composition) {
    case Composition::mixup: {
      // mixup_batch: x_mixup = (1 - mixing) * input + mixing * input[permuted_idx]; dense targets likewise.
      x = x * (1.0 - b.mixing) + x.index({b.perm}) * b.mixing;
      y = y * (1.0 - b.mixing) + y.index({b.perm}) * b.mixing;
      break;
    }
    case Composition::cutmix_smoothing: {
      // cutmix_batch: X_cutmix = input.clone(); X_cutmix[:, :, x1:x2, y1:y2] = input[perm, :, x1:x2, y1:y2];
      // targets weighted by the adjusted lambda; then smooth_labels: targets * (1 - s) + s / K.
      using at::indexing::Slice;
      at::Tensor cut = x.clone();
      cut.index_put_({Slice(), Slice(), Slice(b.box.x1, b.box.x2), Slice(b.box.y1, b.box.y2)},
                     x.index({b.perm, Slice(), Slice(b.box.x1, b.box.x2), Slice(b.box.y1, b.box.y2)}));
      x = cut;
      const double area = cf::cutmix_area(c.h, c.w, b.box);
      y = y * area + y.index({b.perm}) * (1.0 - area);
      y = y * (1.0 - b.smoothing) + b.smoothing / static_cast<double>(c.classes);
      break;
    }
    case Composition::mixup_cutout_normalize: {
      using at::indexing::Slice;
      x = x * (1.0 - b.mixing) + x.index({b.perm}) * b.mixing;
      y = y * (1.0 - b.mixing) + y.index({b.perm}) * b.mixing;
      // cutout_batch: mask = ones_like(X); mask[..., y1:y2, x1:x2] = 0 per hole; X * mask.
      at::Tensor mask = at::ones_like(x);
      for (const cf::CutoutHole& hole : b.holes) {
        mask.index_put_({"...", Slice(hole.y1, hole.y2), Slice(hole.x1, hole.x2)}, 0);
      }
      x = x * mask;
      const at::Tensor mean = at::tensor(b.mean, at::TensorOptions().dtype(at::kDouble))
                                  .to(x.device(), at::kFloat)
                                  .view({1, c.c, 1, 1});
      const at::Tensor sd = at::tensor(b.stddev, at::TensorOptions().dtype(at::kDouble))
                                .to(x.device(), at::kFloat)
                                .view({1, c.c, 1, 1});
      x = (x - mean) / sd;
      break;
    }
  }
  return {x.to(out_dtype(c)), y};
}

template <class... S>
void configure(kc::FusedBatchTransform<S...>& t, const Batch& b) {
  using T = kc::FusedBatchTransform<S...>;
  if constexpr (T::template has<st::MixUp>) t.template get<st::MixUp>() = st::MixUp{b.mixing, b.perm};
  if constexpr (T::template has<st::CutMix>) t.template get<st::CutMix>() = st::CutMix{b.box, b.perm};
  if constexpr (T::template has<st::CutOut>) t.template get<st::CutOut>().holes = b.holes;
  if constexpr (T::template has<st::Normalize>) t.template get<st::Normalize>() = st::Normalize{b.mean, b.stddev};
  if constexpr (T::template has<st::LabelSmoothing>) t.template get<st::LabelSmoothing>().smoothing = b.smoothing;
  t.set_value_checks(false);
}

/// CUDA events on the current stream around each call of `body`.
class EventTimer {
 public:
  EventTimer() {
    C10_CUDA_CHECK(cudaEventCreate(&start_));
    C10_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  template <class F>
  double seconds(F&& body) {
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
    C10_CUDA_CHECK(cudaEventRecord(start_, stream));
    body();
    C10_CUDA_CHECK(cudaEventRecord(stop_, stream));
    C10_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    C10_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaEvent_t start_{};
  cudaEvent_t stop_{};
};

/// Mean seconds of a device-to-device copy of bytes/2 bytes (bytes moved in all), over 20 timed copies.
double roof_seconds(int64_t bytes) {
  const int64_t half = bytes / 2;
  const at::TensorOptions opts = at::TensorOptions().dtype(at::kByte).device(at::kCUDA, 0);
  const at::Tensor src = at::empty({half}, opts);
  at::Tensor dst = at::empty({half}, opts);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
  auto copy = [&] {
    C10_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), static_cast<size_t>(half),
                                   cudaMemcpyDeviceToDevice, stream));
  };
  EventTimer timer;
  for (int i = 0; i < 3; ++i) (void)timer.seconds(copy);
  double total = 0.0;
  constexpr int kReps = 20;
  for (int i = 0; i < kReps; ++i) total += timer.seconds(copy);
  return total / kReps;
}

/// Times `body` per iteration and sets the counters every variant shares.
template <class F>
void timed_loop(benchmark::State& state, const Case& c, F&& body) {
  for (int i = 0; i < 3; ++i) body();  // buffers allocated, kernels loaded
  C10_CUDA_CHECK(cudaDeviceSynchronize());
  EventTimer timer;
  double total = 0.0;
  for (auto _ : state) {
    const double s = timer.seconds(body);
    total += s;
    state.SetIterationTime(s);
  }
  const int64_t bytes = compulsory_bytes(c);
  state.counters["bytes_per_second"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
  if (state.iterations() > 0 && total > 0.0) {
    state.counters["roof_fraction"] = roof_seconds(bytes) / (total / static_cast<double>(state.iterations()));
  }
}

template <class... S>
void bench_fused(benchmark::State& state, const Case& c) {
  const Batch b = make_batch(c);
  kc::FusedBatchTransform<S...> t;
  configure(t, b);
  auto body = [&] {
    const kc::FusedBatchOutput r = t(b.x, b.labels, c.classes, out_dtype(c));
    benchmark::DoNotOptimize(r.input.data_ptr());
  };
  timed_loop(state, c, body);
  // The result against the eager sequence, once (outside the timing).
  const kc::FusedBatchOutput r = t(b.x, b.labels, c.classes, out_dtype(c));
  const auto [x, y] = eager_step(b, c);
  const double image_diff = (r.input.to(at::kFloat) - x.to(at::kFloat)).abs().max().item<double>();
  const double target_diff = (r.target - y).abs().max().item<double>();
  state.counters["max_abs_diff"] = std::max(image_diff, target_diff);
}

void bench_eager(benchmark::State& state, const Case& c) {
  const Batch b = make_batch(c);
  auto body = [&] {
    auto r = eager_step(b, c);
    benchmark::DoNotOptimize(r.first.data_ptr());
  };
  timed_loop(state, c, body);
}

void bench_roof(benchmark::State& state, const Case& c) {
  const int64_t half = compulsory_bytes(c) / 2;
  const at::TensorOptions opts = at::TensorOptions().dtype(at::kByte).device(at::kCUDA, 0);
  const at::Tensor src = at::empty({half}, opts);
  at::Tensor dst = at::empty({half}, opts);
  auto body = [&] {
    C10_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), static_cast<size_t>(half),
                                   cudaMemcpyDeviceToDevice, at::cuda::getCurrentCUDAStream().stream()));
  };
  timed_loop(state, c, body);
}

void register_case(const Case& c) {
  auto add = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  switch (c.composition) {
    case Composition::mixup:
      add(case_name("fused", c), [c](benchmark::State& s) { bench_fused<st::MixUp>(s, c); });
      break;
    case Composition::cutmix_smoothing:
      add(case_name("fused", c), [c](benchmark::State& s) { bench_fused<st::CutMix, st::LabelSmoothing>(s, c); });
      break;
    case Composition::mixup_cutout_normalize:
      add(case_name("fused", c),
          [c](benchmark::State& s) { bench_fused<st::MixUp, st::CutOut, st::Normalize>(s, c); });
      break;
  }
  add(case_name("eager", c), [c](benchmark::State& s) { bench_eager(s, c); });
  add(case_name("roof", c), [c](benchmark::State& s) { bench_roof(s, c); });
}

}  // namespace

int main(int argc, char** argv) {
  if (!at::cuda::is_available()) {
    std::fprintf(stderr, "bench_fused_transforms_cuda needs a CUDA device\n");
    return 1;
  }
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> batches = {{256, 224, 1000}, {128, 32, 10}};
  for (const auto& [n, h, classes] : batches) {
    for (const Composition k :
         {Composition::mixup, Composition::cutmix_smoothing, Composition::mixup_cutout_normalize}) {
      for (const bool u8 : {false, true}) register_case(Case{k, u8, n, 3, h, h, classes});
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
