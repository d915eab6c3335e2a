// The fused CPU batch transform against the eager sequence of ATen operations that Composer's functional code
// runs, and against a plain copy of the same number of bytes (the memory roof), in one run.
//
// Cases: batches 256x3x224x224 and 128x3x32x32; float32 in and out, or uint8 in and bfloat16 out; the
// compositions MixUp, CutMix + LabelSmoothing, and MixUp + CutOut + Normalize. For each case:
// Dense targets: 1000 classes for 224x224 batches, 10 for 32x32 ones.
//   eager/...  the literal port of Composer's functional code (x.float()/255 for uint8; mixup as
//              (1 − m)·x + m·x[π]; cutmix as a clone with the box assigned from x[π]; cutout as a multiply by a
//              0/1 mask; (x − mean)/std; .to(bfloat16)), with its dense targets (one-hot, mixed, smoothed);
//   fused/...  FusedBatchTransform into a reused output buffer and its dense targets;
//   copy/...   at::Tensor::copy_ between two preallocated byte buffers, each half the bytes a transform moves.
// Bytes moved by a transform = input bytes read once + output bytes written once (the floor; MixUp's partner
// reads are not counted). `roof_fraction` = the case's bytes per second / the copy's, the copy measured in the
// same process just before the case. Parameters (m, π, box, holes) are drawn once, outside the timed loop.
//
// Threads: 2 by default (COMPOSER_BENCH_THREADS overrides), set with at::set_num_threads and reported in the
// context. Build with OpenMP and -march=native (see benchmarks/CMakeLists.txt).
#include <benchmark/benchmark.h>

#include <composer/functional.hpp>
#include <composer/kernels/fused_batch_cpu.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

namespace st = composer::kernels::stage;
namespace cf = composer::functional;


enum class Composition { mixup, cutmix_smoothing, mixup_cutout_normalize };
enum class Dtypes { f32, u8_bf16 };

struct Case {
  int64_t n, c, h, w;
  Dtypes dtypes;
  Composition composition;
  /// Classes of the dense targets: ImageNet's 1000 for 224x224 batches, CIFAR's 10 for 32x32 ones.
  int64_t classes() const { return h >= 224 ? 1000 : 10; }
};

const char* name_of(Composition c) {
  switch (c) {
    case Composition::mixup: return "mixup";
    case Composition::cutmix_smoothing: return "cutmix+smoothing";
    default: return "mixup+cutout+normalize";
  }
}

std::string case_name(const Case& k) {
  return std::string(name_of(k.composition)) + "/" + std::to_string(k.n) + "x" + std::to_string(k.c) + "x" +
         std::to_string(k.h) + "x" + std::to_string(k.w) + "/" + (k.dtypes == Dtypes::f32 ? "f32" : "u8->bf16");
}

// The batch and the parameters of one case, drawn once.
struct Data {
  at::Tensor x, y, perm, cut_perm;
  double mixing = 0.3;
  cf::BBox box{0, 0, 0, 0};
  std::vector<cf::CutoutHole> holes;
  std::vector<double> mean{0.485, 0.456, 0.406}, stddev{0.229, 0.224, 0.225};
  double smoothing = 0.1;
  int64_t in_bytes = 0, out_bytes = 0;

  explicit Data(const Case& k) {
    at::manual_seed(0);
    x = k.dtypes == Dtypes::f32 ? at::rand({k.n, k.c, k.h, k.w}) : at::randint(0, 256, {k.n, k.c, k.h, k.w}, at::kByte);
    y = at::randint(0, k.classes(), {k.n});
    perm = at::randperm(k.n);
    cut_perm = at::randperm(k.n);
    box = cf::cutmix_rand_bbox(k.h, k.w, 0.6, k.h / 2, k.w / 2);
    const int64_t side = cf::cutout_length_pixels(k.h, k.w, 0.5);
    holes = cf::sample_cutout_holes(k.h, k.w, 1, side, false);
    in_bytes = x.numel() * static_cast<int64_t>(x.element_size());
    out_bytes = x.numel() * (k.dtypes == Dtypes::f32 ? 4 : 2);
  }
};

// Composer's functional code, op by op.
struct Eager {
  const Case& k;
  const Data& d;
  at::Tensor mean_view, std_view, cutout_mask;

  Eager(const Case& kase, const Data& data) : k(kase), d(data) {
    mean_view = at::tensor(d.mean, at::kDouble).to(at::kFloat).view({1, k.c, 1, 1});
    std_view = at::tensor(d.stddev, at::kDouble).to(at::kFloat).view({1, k.c, 1, 1});
  }

  std::pair<at::Tensor, at::Tensor> operator()() const {
    at::Tensor x = d.x;
    if (k.dtypes == Dtypes::u8_bf16) x = x.to(at::kFloat).div(255);
    at::Tensor target = at::one_hot(d.y, k.classes()).to(at::kFloat);
    switch (k.composition) {
      case Composition::mixup: {
        x = x.mul(1 - d.mixing).add(x.index_select(0, d.perm).mul(d.mixing));
        target = target.mul(1 - d.mixing).add(target.index_select(0, d.perm).mul(d.mixing));
        break;
      }
      case Composition::cutmix_smoothing: {
        at::Tensor pasted = x.clone();
        const auto rows = at::indexing::Slice(d.box.x1, d.box.x2);
        const auto cols = at::indexing::Slice(d.box.y1, d.box.y2);
        using at::indexing::Slice;
        pasted.index_put_({Slice(), Slice(), rows, cols}, x.index_select(0, d.cut_perm).index({Slice(), Slice(), rows, cols}));
        x = pasted;
        const double area = cf::cutmix_area(k.h, k.w, d.box);
        target = target.mul(area).add(target.index_select(0, d.cut_perm).mul(1 - area));
        target = target.mul(1 - d.smoothing).add(d.smoothing / static_cast<double>(k.classes()));
        break;
      }
      case Composition::mixup_cutout_normalize: {
        x = x.mul(1 - d.mixing).add(x.index_select(0, d.perm).mul(d.mixing));
        target = target.mul(1 - d.mixing).add(target.index_select(0, d.perm).mul(d.mixing));
        at::Tensor mask = at::ones({k.h, k.w});
        for (const auto& hole : d.holes)
          mask.slice(0, hole.y1, hole.y2).slice(1, hole.x1, hole.x2).zero_();
        x = x.mul(mask);
        x = x.sub(mean_view).div(std_view);
        break;
      }
    }
    if (k.dtypes == Dtypes::u8_bf16) x = x.to(at::kBFloat16);
    return {x, target};
  }
};

int bench_threads() {
  if (const char* env = std::getenv("COMPOSER_BENCH_THREADS")) return std::max(1, std::atoi(env));
  return 2;
}

template <class Transform>
void run_fused(benchmark::State& state, const Case& k, const Data& d, Transform& t, double roof) {
  const at::ScalarType out_dtype = k.dtypes == Dtypes::f32 ? at::kFloat : at::kBFloat16;
  at::Tensor out = at::empty(d.x.sizes(), at::TensorOptions().dtype(out_dtype));
  for (auto _ : state) {
    t.transform_input_into(d.x, out);
    benchmark::DoNotOptimize(t.transform_target(d.y, k.classes()).data_ptr());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * (d.in_bytes + d.out_bytes));
  state.counters["roof_fraction"] = benchmark::Counter(
      static_cast<double>(d.in_bytes + d.out_bytes) / roof,
      benchmark::Counter::kIsIterationInvariantRate);  // bytes per second / roof bytes per second
}

// Median seconds of `reps` copies of half the bytes into the other half: the roof for `bytes` moved.
double measure_roof(int64_t bytes) {
  at::Tensor src = at::randint(0, 256, {bytes / 2}, at::kByte);
  at::Tensor dst = at::empty_like(src);
  std::vector<double> seconds;
  for (int i = 0; i < 12; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    dst.copy_(src);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return static_cast<double>(bytes) / seconds[seconds.size() / 2];
}

void register_case(const Case& k) {
  const std::string name = case_name(k);
  benchmark::RegisterBenchmark(("eager/" + name).c_str(), [k](benchmark::State& state) {
    const Data d(k);
    const Eager eager(k, d);
    for (auto _ : state) {
      auto [x, target] = eager();
      benchmark::DoNotOptimize(x.data_ptr());
      benchmark::DoNotOptimize(target.data_ptr());
    }
    state.SetBytesProcessed(state.iterations() * (d.in_bytes + d.out_bytes));
  })->Unit(benchmark::kMillisecond)->UseRealTime();

  benchmark::RegisterBenchmark(("fused/" + name).c_str(), [k](benchmark::State& state) {
    const Data d(k);
    const double roof = measure_roof(d.in_bytes + d.out_bytes);
    state.counters["roof_GBps"] = roof / 1e9;
    switch (k.composition) {
      case Composition::mixup: {
        composer::kernels::FusedBatchTransform<st::MixUp> t;
        t.get<st::MixUp>() = {d.mixing, d.perm};
        run_fused(state, k, d, t, roof);
        break;
      }
      case Composition::cutmix_smoothing: {
        composer::kernels::FusedBatchTransform<st::CutMix, st::LabelSmoothing> t;
        t.get<st::CutMix>() = {d.box, d.cut_perm};
        t.get<st::LabelSmoothing>() = {d.smoothing};
        run_fused(state, k, d, t, roof);
        break;
      }
      case Composition::mixup_cutout_normalize: {
        composer::kernels::FusedBatchTransform<st::MixUp, st::CutOut, st::Normalize> t;
        t.get<st::MixUp>() = {d.mixing, d.perm};
        t.get<st::CutOut>() = {d.holes};
        t.get<st::Normalize>() = {d.mean, d.stddev};
        run_fused(state, k, d, t, roof);
        break;
      }
    }
  })->Unit(benchmark::kMillisecond)->UseRealTime();

  benchmark::RegisterBenchmark(("copy/" + name).c_str(), [k](benchmark::State& state) {
    const Data d(k);
    const int64_t bytes = d.in_bytes + d.out_bytes;
    at::Tensor src = at::randint(0, 256, {bytes / 2}, at::kByte);
    at::Tensor dst = at::empty_like(src);
    for (auto _ : state) {
      dst.copy_(src);
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * bytes);
  })->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = bench_threads();
  at::set_num_threads(threads);
  benchmark::AddCustomContext("at_threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("vectorized_with", composer::kernels::detail::kUseAtenVec ? "at::vec" : "lane loops");
  for (const auto composition :
       {Composition::mixup_cutout_normalize, Composition::mixup, Composition::cutmix_smoothing}) {
    for (const auto dtypes : {Dtypes::f32, Dtypes::u8_bf16}) {
      register_case({256, 3, 224, 224, dtypes, composition});
      register_case({128, 3, 32, 32, dtypes, composition});
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
