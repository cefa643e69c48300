#include "bitrun/base/error.hpp"

namespace bitrun {

std::string with_visible_nul(std::string message) {
  if (message.find('\0') == std::string::npos) return message;
  std::string out;
  for (char c : message) {
    if (c == '\0') out += '\\';
    out += c == '\0' ? '0' : c;
  }
  return out;
}

}  // namespace bitrun
