// Which masked positions of a sub-block a step makes final: the modes of diffusion_settings.hpp applied to the
// predictions of the competing (still masked) positions. Every rule unmasks at least one position, so a block
// always finishes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "diffusion_settings.hpp"

namespace bitrun::diffusion {

struct Candidate {
  std::int32_t position = 0;
  std::int32_t token = 0;
  float confidence = 0.0f;   // probability of `token` in the distribution it was chosen from
  float entropy = 0.0f;      // of the model's distribution at the position, in nats (EB-Sampler)
};

// The adaptive mode's lowered threshold at `iteration` (1-based) of a sub-block, for base threshold t; it applies to
// the leftmost run of masked positions only (see choose_unmasked).
double adaptive_threshold(double t, std::int32_t iteration);

// Indices into `candidates` (ascending) to unmask. fill_all: unmask every candidate (greedy, or the iteration
// cap reached).
std::vector<std::size_t> choose_unmasked(const Settings& settings, std::span<const Candidate> candidates,
                                         std::int32_t iteration, bool fill_all);

}  // namespace bitrun::diffusion
