// The language-model job: a small byte-level GPT trained on the text of Debian's fortunes package with
// composer::Trainer and a preset of methods, with a progress bar, held-out evaluation (cross entropy per token and
// perplexity), a metrics file and checkpoints; it prints the final held-out perplexity.
//
//   language_model --help
//   language_model --preset baseline --duration 2ep --threads 2
//   language_model --preset methods --time-budget 240   # GatedLinearUnits, Alibi, SeqLengthWarmup, ...
#include <composer/algorithms/alibi.hpp>
#include <composer/algorithms/gated_linear_units.hpp>
#include <composer/algorithms/gradient_clipping.hpp>
#include <composer/algorithms/low_precision_layernorm.hpp>
#include <composer/algorithms/seq_length_warmup.hpp>
#include <composer/composer.hpp>
#include <composer/data/text_corpus.hpp>
#include <composer/io/files.hpp>
#include <composer/metrics/language.hpp>
#include <composer/models/gpt.hpp>

#include <CLI/CLI.hpp>
#include <torch/optim/adamw.h>

#include "cli_checks.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace {

using examples::positive_finite;
using examples::whole_number;

struct Config {
  std::string duration = "2ep";
  double time_budget = 0;  // seconds of training; 0: none
  std::int64_t sequence_length = 128;
  std::int64_t batch_size = 32;
  double lr = 3e-3;
  double weight_decay = 0.01;
  std::uint64_t seed = 17;
  int threads = 2;
  std::string corpus = composer::data::default_fortunes_folder;
  std::string output_dir = "runs/language_model";
  std::string preset = "baseline";
  std::string eval_interval = "1ep";
  std::int64_t eval_batches = -1;
  std::string save_interval = "1ep";
  int keep_checkpoints = 2;
  std::string resume;
  bool progress = true;
  std::string device = "cpu";
  std::string precision = "fp32";
};

// Stops training once its batches have taken `seconds` of training time (evaluation excluded), so that presets
// can be compared at the same wall time; the run then ends as if max_duration were reached (final evaluation and
// checkpoint included).
struct TimeBudget {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::BATCH_END};
  double seconds = 0;
  void apply(composer::Event, composer::State& state) {
    if (seconds > 0 && state.timestamp.total_wct().count() >= seconds) state.stop_training();
  }
};

// The held-out perplexity after each evaluation, with the training time and tokens so far (time-to-perplexity).
struct PerplexityTimeline {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::EVAL_END};
  struct Point {
    double seconds;
    std::int64_t tokens;
    double perplexity;
  };
  std::vector<Point> points;
  void apply(composer::Event, composer::State& state) {
    if (state.dataloader_label != "eval") return;
    points.push_back({state.timestamp.total_wct().count(), state.timestamp.token().count(),
                      state.eval_metric_values.at("eval").at("language_perplexity")});
  }
};

std::int64_t parameter_count(const torch::nn::Module& root) {
  std::int64_t n = 0;
  for (const auto& p : root.parameters()) n += p.numel();
  return n;
}

struct Result {
  double perplexity;
  double perplexity_2x;  // NaN unless the model can run on sequences of twice the length
};

// Trains the GPT with the methods `Policies...` and returns the final held-out perplexity.
template <class... Policies>
Result train(const Config& config, const std::vector<std::string>& documents, bool evaluate_2x,
             Policies... policies) {
  namespace data = composer::data;
  const data::LanguageModelDataOptions data_options{.sequence_length = config.sequence_length,
                                                    .batch_size = config.batch_size,
                                                    .seed = config.seed};
  data::LanguageModelData text = data::make_language_model_data(documents, data_options);
  std::printf("language_model: %lld training tokens from %lld fortunes, %lld held-out tokens from %lld\n",
              static_cast<long long>(text.train_tokens), static_cast<long long>(text.documents_train),
              static_cast<long long>(text.heldout_tokens), static_cast<long long>(text.documents_heldout));
  std::vector<composer::Evaluator> evaluators;
  if (evaluate_2x) {
    // the same held-out fortunes cut into sequences twice as long, which only a model with Alibi can run on
    data::LanguageModelDataOptions longer = data_options;
    longer.sequence_length = 2 * config.sequence_length;
    evaluators.push_back({.label = "heldout_2x",
                          .dataloader = std::move(data::make_language_model_data(documents, longer).heldout)});
  }

  torch::manual_seed(config.seed);
  composer::models::GPT gpt(composer::models::GPTOptions{.max_sequence_length = config.sequence_length});
  auto optimizer = std::make_shared<torch::optim::AdamW>(
      gpt->parameters(), torch::optim::AdamWOptions(config.lr).betas({0.9, 0.95}).weight_decay(config.weight_decay));
  const std::string& out = config.output_dir;
  composer::TrainerOptions options{
      .train_dataloader = std::move(text.train),
      .eval_dataloader = std::move(text.heldout),
      .evaluators = std::move(evaluators),
      .max_duration = composer::Time(config.duration),
      .optimizers = {optimizer},
      // linear warm-up over the first 5% of training, then cosine decay to a tenth
      .schedulers = {composer::optim::CosineAnnealingWithWarmupScheduler{.t_warmup = composer::Time("0.05dur"),
                                                                         .alpha_f = 0.1}},
      .eval_interval = composer::Time(config.eval_interval),
      .eval_subset_num_batches = config.eval_batches,
      .eval_metrics = composer::metrics::language_model_metrics(),
      .save_folder = composer::io::join(out, "checkpoints"),
      .save_interval = composer::Time(config.save_interval),
      .save_num_checkpoints_to_keep = config.keep_checkpoints,
      .load_path = config.resume,
      .seed = config.seed,
      .device = c10::Device(config.device),
      .precision = composer::parse_precision(config.precision),
      .run_name = "language_model-" + config.preset,
      .progress_bar = config.progress,
      .metrics_file = composer::io::join(out, "metrics.csv"),
  };
  composer::Trainer<Policies..., TimeBudget, PerplexityTimeline> trainer(
      composer::Model(gpt, composer::models::language_model_loss), std::move(options), std::move(policies)...,
      TimeBudget{config.time_budget}, PerplexityTimeline{});
  std::printf("language_model: GPT of %lld parameters after the methods' surgery\n",
              static_cast<long long>(parameter_count(*gpt)));
  trainer.fit();
  if (!trainer.state().eval_metric_values.contains("eval")) trainer.eval();
  const auto& ts = trainer.state().timestamp;
  std::printf("language_model: trained %lld batches, %lld tokens in %.1f s of training\n",
              static_cast<long long>(ts.batch().count()), static_cast<long long>(ts.token().count()),
              ts.total_wct().count());
  std::printf("language_model: time-to-perplexity (training seconds, tokens, held-out perplexity):");
  for (const auto& point : trainer.template get<PerplexityTimeline>().points)
    std::printf(" (%.1f, %lld, %.3f)", point.seconds, static_cast<long long>(point.tokens), point.perplexity);
  std::printf("\n");
  const auto& values = trainer.state().eval_metric_values;
  Result result{values.at("eval").at("language_perplexity"), std::nan("")};
  if (values.contains("heldout_2x")) result.perplexity_2x = values.at("heldout_2x").at("language_perplexity");
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  CLI::App app{"Train a small byte-level GPT on Debian's fortunes with composer-cpp's Trainer and a preset of methods."};
  app.add_option("--duration", config.duration, "training length: 2ep, 1000ba, 4000000tok")->capture_default_str();
  app.add_option("--time-budget", config.time_budget,
                 "stop after this many seconds of training (0: none), to compare presets at the same wall time")
      ->capture_default_str()
      ->check(positive_finite(/*allow_zero=*/true));
  app.add_option("--sequence-length", config.sequence_length, "tokens (bytes) per training sequence")
      ->capture_default_str()
      ->check(whole_number(2, 4096));
  app.add_option("--batch-size", config.batch_size, "sequences per batch")->capture_default_str()->check(whole_number(1, 65536));
  app.add_option("--lr", config.lr, "AdamW learning rate")->capture_default_str()->check(positive_finite());
  app.add_option("--seed", config.seed, "random seed")->capture_default_str()->check(whole_number(0, 4294967295));
  app.add_option("--threads", config.threads, "CPU threads for LibTorch")->capture_default_str()->check(whole_number(1, 1024));
  app.add_option("--corpus", config.corpus, "a fortune file, or a folder of them")->capture_default_str();
  app.add_option("--output-dir", config.output_dir, "folder for metrics.csv and checkpoints/")->capture_default_str();
  app.add_option("--preset", config.preset, "methods to train with")
      ->capture_default_str()
      ->check(CLI::IsMember({"baseline", "methods"}));
  app.add_option("--eval-interval", config.eval_interval, "evaluate every ...ep, ...ba or ...tok")->capture_default_str();
  app.add_option("--eval-batches", config.eval_batches, "held-out batches per evaluation (-1: all)")
      ->capture_default_str()
      ->check(whole_number(-1, 1000000));
  app.add_option("--save-interval", config.save_interval, "checkpoint every ...ep, ...ba or ...tok")->capture_default_str();
  app.add_option("--keep-checkpoints", config.keep_checkpoints, "checkpoints kept (positive, or -1: all)")
      ->capture_default_str()
      ->check(whole_number(-1, 1000000));
  app.add_option("--resume", config.resume, "checkpoint to resume from, e.g. runs/language_model/checkpoints/latest-rank0.pt");
  app.add_flag("!--no-progress", config.progress, "plain output without a progress bar");
  app.add_option("--device", config.device, "where to train: cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--precision", config.precision, "fp32, or on CUDA amp_bf16 or amp_fp16")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "amp_bf16", "amp_fp16"}));
  CLI11_PARSE(app, argc, argv);

  try {
    at::set_num_threads(config.threads);
    const c10::Device device(config.device);
    char budget[48] = "";
    if (config.time_budget > 0) std::snprintf(budget, sizeof budget, " or %g s of training", config.time_budget);
    std::printf("language_model: preset %s, %s%s, sequences of %lld, batch %lld, lr %g, seed %llu, %d threads, "
                "device %s, precision %s, corpus %s\n",
                config.preset.c_str(), config.duration.c_str(), budget,
                static_cast<long long>(config.sequence_length), static_cast<long long>(config.batch_size), config.lr,
                static_cast<unsigned long long>(config.seed), at::get_num_threads(), device.str().c_str(),
                config.precision.c_str(), config.corpus.c_str());
    const std::vector<std::string> documents = composer::data::read_fortunes(config.corpus);
    const auto started = std::chrono::steady_clock::now();
    Result result{};
    namespace alg = composer::algorithms;
    if (config.preset == "baseline") {
      result = train(config, documents, false);
    } else {
      // Gated units of about the MLP's parameters; ALiBi in place of position embeddings, trained on sequences of
      // half the length (twice as many rows) and evaluated on the full and twice the length; the sequence length
      // warmed up from 8 tokens over the first 30% of training; LayerNorms in low precision under amp on CUDA;
      // gradients clipped to norm 1.
      const std::int64_t half = config.sequence_length / 2;
      result = train(config, documents, true, alg::GatedLinearUnits({.match_parameter_count = true}),
                     alg::Alibi(2 * config.sequence_length, 0.5),
                     alg::SeqLengthWarmup({.duration = 0.3, .min_seq_length = std::min<std::int64_t>(8, half),
                                           .max_seq_length = half, .step_size = 8}),
                     alg::LowPrecisionLayerNorm(), alg::GradientClipping("norm", 1.0));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("language_model: held-out perplexity %.3f (preset %s, %.0f s)\n", result.perplexity,
                config.preset.c_str(), seconds);
    if (!std::isnan(result.perplexity_2x))
      std::printf("language_model: held-out perplexity %.3f on sequences of %lld tokens (twice the evaluation "
                  "length)\n",
                  result.perplexity_2x, static_cast<long long>(2 * config.sequence_length));
    std::printf("language_model: metrics in %s/metrics.csv\n", config.output_dir.c_str());
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "language_model: %s\n", error.what());
    return 1;
  }
}
