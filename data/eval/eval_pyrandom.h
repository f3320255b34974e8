// CPython's `random` module, bit for bit: MT19937 seeded the way `random.seed(int)` seeds it, `getrandbits`, and
// `randint` through `_randbelow_with_getrandbits` (draw bit_length(n) bits, redraw while >= n). The GPTQ C4 validation
// sampler is defined by this generator (random.seed(0) + randint), so our windows equal the published ones only if
// every draw matches. No torch here.
#pragma once

#include <array>
#include <cstdint>

namespace bmos {

class PythonRandom {
 public:
  explicit PythonRandom(uint64_t seed = 0) { seed_int(seed); }

  // random.seed(n) for a non-negative int n: init_by_array over n's 32-bit words, least significant first.
  void seed_int(uint64_t seed);
  // random.getrandbits(k), 0 <= k <= 64.
  uint64_t getrandbits(int k);
  // random._randbelow(n), n >= 1: uniform in [0, n).
  uint64_t randbelow(uint64_t n);
  // random.randint(a, b): uniform in [a, b]. Throws std::invalid_argument when b < a (CPython raises ValueError
  // "empty range for randrange()").
  int64_t randint(int64_t a, int64_t b);

 private:
  uint32_t next_u32();  // genrand_uint32
  void init_genrand(uint32_t s);

  std::array<uint32_t, 624> mt_{};
  int index_ = 625;
};

}  // namespace bmos
