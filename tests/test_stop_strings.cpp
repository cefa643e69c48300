// Stop strings on streamed text: split across pushes, several candidates, overlapping prefixes, never shown.
#include <gtest/gtest.h>

#include "bitrun/tokenizer/stop_strings.hpp"

namespace bitrun {
namespace {

// Pushes the pieces and returns everything shown (plus the flush when no stop matched).
std::string stream(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string shown;
  for (const auto& p : pieces) shown += m.push(p);
  return shown + m.flush();
}

TEST(StopStrings, StopSplitAcrossPiecesIsCaughtAndNotShown) {
  StopMatcher m({"<|end|>"});
  EXPECT_EQ(m.push("Hello <"), "Hello ");   // "<" could start the stop string: held back
  EXPECT_EQ(m.push("|en"), "");
  EXPECT_EQ(m.push("d|> more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "<|end|>");
  EXPECT_EQ(m.push("ignored"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, HeldBackTextIsReleasedWhenItStopsMatching) {
  StopMatcher m({"stop"});
  EXPECT_EQ(stream(m, {"a st", "ep s", "to", "x"}), "a step stox");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, EarliestOfSeveralWinsAndOverlapsAreHandled) {
  StopMatcher a({"world", "lo w"});
  EXPECT_EQ(stream(a, {"hello world"}), "hel");
  EXPECT_EQ(a.matched(), "lo w");
  StopMatcher b({"abc"});
  EXPECT_EQ(stream(b, {"xab", "abc", "y"}), "xab");   // the first "ab" was a false start
  EXPECT_TRUE(b.stopped());
  StopMatcher none({"", "\n\n"});                      // an empty stop string is ignored
  EXPECT_EQ(stream(none, {"one\n", "two"}), "one\ntwo");
}

}  // namespace
}  // namespace bitrun
