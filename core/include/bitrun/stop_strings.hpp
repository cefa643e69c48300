// Stop strings on streamed text: push() returns the text that can be shown now, holding back any tail that could
// still grow into a stop string (so a stop split across tokens is caught and never shown); once a stop string
// appears, the text before it is released and stopped() becomes true. Feed it whole UTF-8 characters (the output
// of StreamingDecoder) so what it holds back or releases never splits a character.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bitrun {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  std::string push(std::string_view text);
  // The held-back tail, at the end of generation without a stop (empty after a stop).
  std::string flush();
  bool stopped() const { return stopped_; }
  // The stop string that matched, when stopped().
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace bitrun
