// Timestamp: advancing by batch, epoch and iteration counts what Composer's does.
#include <doctest/doctest.h>

#include <composer/core/timestamp.hpp>

using composer::Time;
using composer::Timestamp;
using composer::TimeUnit;
using Seconds = Timestamp::Seconds;

TEST_CASE("to_next_batch counts batches, samples and tokens in total and in the epoch") {
  Timestamp t;
  t = t.to_next_batch(32, 320, Seconds{0.5});
  t = t.to_next_batch(16, 160, Seconds{0.25});
  CHECK(t.batch() == Time("2ba"));
  CHECK(t.sample() == Time("48sp"));
  CHECK(t.token() == Time("480tok"));
  CHECK(t.batch_in_epoch() == Time("2ba"));
  CHECK(t.sample_in_epoch() == Time("48sp"));
  CHECK(t.token_in_epoch() == Time("480tok"));
  CHECK(t.token_in_iteration() == Time("480tok"));
  CHECK(t.epoch() == Time("0ep"));
  CHECK(t.total_wct().count() == doctest::Approx(0.75));
  CHECK(t.batch_wct().count() == doctest::Approx(0.25));
  CHECK_THROWS_AS((void)t.to_next_batch(-1), std::invalid_argument);
}

TEST_CASE("to_next_epoch resets the within-epoch counters only") {
  Timestamp t = Timestamp{}.to_next_batch(10, 5, Seconds{1}).to_next_batch(10, 5, Seconds{1});
  t = t.to_next_epoch(Seconds{0.5});
  CHECK(t.epoch() == Time("1ep"));
  CHECK(t.epoch_in_iteration() == Time("1ep"));
  CHECK(t.batch() == Time("2ba"));
  CHECK(t.sample() == Time("20sp"));
  CHECK(t.batch_in_epoch() == Time("0ba"));
  CHECK(t.sample_in_epoch() == Time("0sp"));
  CHECK(t.token_in_epoch() == Time("0tok"));
  CHECK(t.token_in_iteration() == Time("10tok"));
  CHECK(t.epoch_wct().count() == 0.0);
  CHECK(t.total_wct().count() == doctest::Approx(2.5));
  t = t.to_next_iteration();
  CHECK(t.iteration() == Time("1iter"));
  CHECK(t.epoch_in_iteration() == Time("0ep"));
  CHECK(t.token_in_iteration() == Time("0tok"));
  CHECK(t.epoch() == Time("1ep"));
}

TEST_CASE("get() reads a counter by unit and compares with times") {
  Timestamp t = Timestamp{}.to_next_batch(4).to_next_batch(4).to_next_epoch();
  CHECK(t.get(TimeUnit::BATCH) == Time("2ba"));
  CHECK(t.get(TimeUnit::SAMPLE) == Time("8sp"));
  CHECK(t.get(TimeUnit::EPOCH) == Time("1ep"));
  CHECK_THROWS_AS((void)t.get(TimeUnit::DURATION), std::invalid_argument);
  CHECK(t < Time("2ep"));
  CHECK(t >= Time("2ba"));
  CHECK_FALSE(t > Time("8sp"));
}

TEST_CASE("counters round-trip and inconsistent ones are refused") {
  Timestamp t = Timestamp{}.to_next_batch(3, 7, Seconds{2}).to_next_epoch().to_next_batch(3, 7);
  const Timestamp back = Timestamp::from_counters(t.counters(), t.durations());
  CHECK(back == t);
  CHECK(back.total_wct().count() == doctest::Approx(2.0));
  auto bad = t.counters();
  bad[7] = bad[2] + 1;  // batch_in_epoch above batch
  CHECK_THROWS_WITH_AS(Timestamp::from_counters(bad), doctest::Contains("inconsistent"), std::invalid_argument);
  bad = t.counters();
  bad[0] = -1;
  CHECK_THROWS_WITH_AS(Timestamp::from_counters(bad), doctest::Contains("'iteration' is negative"),
                       std::invalid_argument);
}
