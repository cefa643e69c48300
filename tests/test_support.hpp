// Small helpers shared by the test suites.
#pragma once

#include <functional>
#include <string>

namespace bitrun::test {

// The message of the exception of type E that `f` throws, or "(no error)".
template <typename E>
std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace bitrun::test
