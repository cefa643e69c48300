// Reading a file mapping that may change underneath: a file truncated (or rewritten in place) while mapped raises
// SIGBUS on the next touch of a page past its new end, which would kill the process. copy_from_mapping turns that
// into a return value, so a server whose model file was replaced fails requests with an error instead of dying.
#pragma once

#include <cstddef>

namespace bitrun::detail {

// memcpy(dst, src, n), src inside a file mapping. False when a page of it could not be read (SIGBUS); dst is then
// partly written. Other threads' SIGBUS and every other signal keep their handling.
bool copy_from_mapping(void* dst, const void* src, std::size_t n);

}  // namespace bitrun::detail
