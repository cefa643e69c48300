// Stop strings on streamed text: push() returns the text that can be shown now, holding back any tail that could
// still grow into a stop string (so a stop split across tokens is caught and never shown); once a stop string
// appears, the text before it is released and stopped() becomes true. Feed it whole UTF-8 characters (the output
// of StreamingDecoder) so what it holds back or releases never splits a character.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bitrun/tokenizer/tokenizer.hpp"

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

// The text of a generated sequence as it streams: tokens detokenized into whole UTF-8 characters
// (StreamingDecoder), then the stop strings applied (StopMatcher). What every output of generated text needs.
class TextStream {
 public:
  // continuation: see StreamingDecoder (true when the tokens follow a prompt that has text).
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stops, bool continuation = false)
      : text_(tokenizer, /*render_special=*/false, continuation), stop_(std::move(stops)) {}
  // The text that can be shown after `token` ("" once a stop string matched).
  std::string push(std::int32_t token) { return stop_.push(text_.push(token)); }
  // At the end of the sequence: whatever was held back, unless a stop string matched.
  std::string finish() { return stop_.stopped() ? std::string() : stop_.push(text_.flush()) + stop_.flush(); }
  bool stopped() const { return stop_.stopped(); }

 private:
  StreamingDecoder text_;
  StopMatcher stop_;
};

}  // namespace bitrun
