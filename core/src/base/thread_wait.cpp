#include "bitrun/base/thread_wait.hpp"

#include <dlfcn.h>

#include <cstdlib>

#include "bitrun/base/error.hpp"

namespace bitrun {

ThreadWait parse_thread_wait(const std::string& value) {
  if (value == "auto") return ThreadWait::Auto;
  if (value == "spin") return ThreadWait::Spin;
  if (value == "sleep") return ThreadWait::Sleep;
  throw ConfigError("threads_wait: '" + value + "' is not one of auto, spin, sleep");
}

namespace {

bool openmp_runtime_loaded() {
  // RTLD_NOLOAD only looks the library up; it never loads it.
  void* handle = ::dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (!handle) return false;
  ::dlclose(handle);
  return true;
}

}  // namespace

ThreadWaitOutcome apply_thread_wait(ThreadWait wait) {
  if (wait == ThreadWait::Auto) return {false, "libgomp's default (spin, then sleep)"};
  for (const char* name : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"})
    if (const char* set = std::getenv(name))
      return {false, std::string("the environment's ") + name + "=" + set + " takes precedence"};
  if (openmp_runtime_loaded()) return {false, "the OpenMP runtime was already initialized"};
  const char* policy = wait == ThreadWait::Spin ? "active" : "passive";
  ::setenv("OMP_WAIT_POLICY", policy, 1);
  return {true, std::string("OMP_WAIT_POLICY=") + policy};
}

}  // namespace bitrun
