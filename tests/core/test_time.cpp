// Time: Composer's time-string grammar, arithmetic within a unit, and errors across units.
#include <doctest/doctest.h>

#include <composer/core/time.hpp>

#include <string>
#include <vector>

using composer::Time;
using composer::TimeUnit;

namespace {
struct GoodTimestring {
  std::string text;
  double value;
  TimeUnit unit;
};
}  // namespace

TEST_CASE("good time strings parse to Composer's values") {
  const std::vector<GoodTimestring> table = {
      {"10ep", 10, TimeUnit::EPOCH},           {"500ba", 500, TimeUnit::BATCH},
      {"2048sp", 2048, TimeUnit::SAMPLE},      {"4096tok", 4096, TimeUnit::TOKEN},
      {"0.25dur", 0.25, TimeUnit::DURATION},   {"2iter", 2, TimeUnit::ITERATION},
      {"30sec", 30, TimeUnit::SECOND},         {"3e4tok", 30000, TimeUnit::TOKEN},
      {"4_00_0tok", 4000, TimeUnit::TOKEN},    {"3_0e10sp", 3e11, TimeUnit::SAMPLE},
      {"2.0ep", 2, TimeUnit::EPOCH},           {"030.0sp", 30, TimeUnit::SAMPLE},
      {"10EP", 10, TimeUnit::EPOCH},           {"7Ba", 7, TimeUnit::BATCH},
      {".5dur", 0.5, TimeUnit::DURATION},      {"5.dur", 5.0, TimeUnit::DURATION},
      {"1e-3dur", 0.001, TimeUnit::DURATION},  {"-5ep", -5, TimeUnit::EPOCH},
      {"+3ba", 3, TimeUnit::BATCH},            {"1h20m40s", 4840, TimeUnit::SECOND},
      {"10s", 10, TimeUnit::SECOND},           {"1m", 60, TimeUnit::SECOND},
      {"2h", 7200, TimeUnit::SECOND},          {"1h5s", 3605, TimeUnit::SECOND},
      {"1dur", 1.0, TimeUnit::DURATION},       {"59s", 59, TimeUnit::SECOND},
      {"23h59m59s", 86399, TimeUnit::SECOND},  {"05s", 5, TimeUnit::SECOND},
      {"60sec", 60, TimeUnit::SECOND},         {"61sec", 61, TimeUnit::SECOND},
  };
  for (const auto& row : table) {
    CAPTURE(row.text);
    const Time t = Time::from_timestring(row.text);
    CHECK(t.unit() == row.unit);
    CHECK(t.value() == doctest::Approx(row.value));
  }
}

TEST_CASE("bad time strings are clear errors") {
  const std::vector<std::string> table = {"",      "ep",      "10",   "10 epochs", "abc",  "1__0ep", "_1ep",
                                          "1_ep",  "10xx",    "nanep", "infdur",   "1.5ep", "0.1sec", "1.1iter",
                                          "90m",   "25h",     "e5ep", "1e5.5ba",   "--1ep", "5 5ep",
                                          "60s",   "61s",     "62s",  "1m60s",     "1h0m61s", "24h", "100s",
                                          "1H",    "5S"};
  for (const auto& text : table) {
    CAPTURE(text);
    CHECK_THROWS_AS(Time::from_timestring(text), composer::TimeParseError);
  }
  CHECK_THROWS_WITH(Time::from_timestring("10 epochs"), doctest::Contains("invalid time string '10 epochs'"));
  CHECK_THROWS_WITH(Time::from_timestring("1.5ep"), doctest::Contains("requires integer values"));
  // Composer parses wall-clock times with datetime.strptime, whose datetime refuses seconds of 60 and 61.
  CHECK_THROWS_WITH(Time::from_timestring("60s"), doctest::Contains("invalid time string '60s'"));
}

TEST_CASE("Time(value, unit name) accepts values and names in any case") {
  CHECK(Time(10, "epoch") == Time("10ep"));
  CHECK(Time(10, "EPOCH") == Time(10, TimeUnit::EPOCH));
  CHECK(Time(3, "ba") == Time::from_batch(3));
  CHECK(Time(0.5, "dur") == Time::from_duration(0.5));
  CHECK(Time(2.0, "sp") == Time::from_sample(2));
  CHECK_THROWS_WITH_AS(Time(10, "fortnight"), doctest::Contains("unknown time unit 'fortnight'"),
                       composer::TimeParseError);
  CHECK_THROWS_AS(Time(1.5, TimeUnit::EPOCH), composer::TimeParseError);
}

TEST_CASE("to_string writes <value><unit> as Composer's str()") {
  CHECK(Time("10ep").to_string() == "10ep");
  CHECK(Time("0.5dur").to_string() == "0.5dur");
  CHECK(Time(1, TimeUnit::DURATION).to_string() == "1.0dur");
  CHECK(Time("6sec").to_string() == "6sec");
  CHECK(Time("1h").to_string() == "3600sec");
  for (const char* s : {"3ba", "0.125dur", "77tok", "9iter"}) CHECK(Time(s).to_string() == s);
}

TEST_CASE("arithmetic within a unit") {
  CHECK(Time("1ep") + Time("2ep") == Time("3ep"));
  CHECK(Time("3ep") - Time("1ep") == Time("2ep"));
  CHECK(-Time("3ba") == Time("-3ba"));
  CHECK(Time("2ep") * 0.5 == Time("1ep"));
  CHECK(Time("3ba") * 0.5 == Time("1ba"));  // truncation toward zero
  CHECK(Time("-3ba") * 0.5 == Time("-1ba"));
  CHECK(Time("0.5dur") * Time("2ep") == Time("1ep"));
  CHECK(Time("2ep") * Time("0.5dur") == Time("1ep"));
  CHECK(Time("0.5dur") * 2 == Time("1dur"));
  CHECK(Time("4ep") / 2 == Time("2ep"));
  CHECK(Time("5ep") / 2 == Time("2ep"));
  CHECK(Time("1ep") / Time("2ep") == Time("0.5dur"));
  CHECK(Time("7ba") % Time("3ba") == Time("1ba"));
  CHECK(Time("-7ba") % Time("3ba") == Time("2ba"));  // Python's sign rule
  Time t("1ep");
  t += Time("4ep");
  CHECK(t == Time("5ep"));
  CHECK(Time("1ep") < Time("2ep"));
  CHECK(Time("2ep") >= Time("2ep"));
  CHECK(Time("0.3dur") > Time("0.2dur"));
}

TEST_CASE("mixing units is a clear error") {
  CHECK_THROWS_WITH_AS(Time("1ep") + Time("1ba"), doctest::Contains("different units"), composer::TimeUnitMismatch);
  CHECK_THROWS_AS(Time("1ep") - Time("1sp"), composer::TimeUnitMismatch);
  CHECK_THROWS_AS((void)(Time("1ep") < Time("1ba")), composer::TimeUnitMismatch);
  CHECK_THROWS_AS((void)(Time("1ep") == Time("1ba")), composer::TimeUnitMismatch);
  CHECK_THROWS_WITH_AS(Time("1ep") * Time("1ba"), doctest::Contains("one of the units to be dur"),
                       composer::TimeUnitMismatch);
  CHECK_THROWS_AS(Time("1ep") / Time("2ba"), composer::TimeUnitMismatch);
  CHECK_THROWS_AS(Time("1ep") % Time("2ba"), composer::TimeUnitMismatch);
  CHECK_THROWS_AS(Time("1ep") / 0.0, std::domain_error);
  CHECK_THROWS_AS(Time("1ep") / Time("0ep"), std::domain_error);
}
