// An HDF5 token shard (data/token_shard.h): the root attributes read_shard_info reads, then ShardReader's datasets and
// every document. HDF5 itself is not instrumented; what it does with a bad file is part of what we ship.
#include "data/token_shard.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(token_shard) {
  const std::string path = bmos_fuzz::write_file("shard.h5", data, size);
  try {
    bmos::read_shard_info(path);
    bmos::ShardReader reader(path);
    for (int64_t d = 0; d < reader.info().n_docs && d < 64; ++d) reader.document(d);
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
