// TensorBoard event files without TensorFlow or torch: the TFRecord framing and the few fields of the Event protobuf
// that TensorBoard's scalar dashboard reads, encoded by hand (tests/reference/read_tfevents.py reads them back with
// the protobuf library and the public field numbers).
//   record     = uint64 length | uint32 masked_crc(length's 8 bytes) | data | uint32 masked_crc(data), little-endian
//   masked_crc = ((c >> 15) | (c << 17)) + 0xa282ead8, c = CRC-32C (Castagnoli) of the bytes
//   Event      (tensorflow/core/util/event.proto): 1 wall_time double, 2 step int64, 3 file_version string,
//              5 summary Summary, 6 session_log SessionLog
//   Summary    (tensorflow/core/framework/summary.proto): 1 value (repeated Value); Value: 1 tag string,
//              2 simple_value float
//   SessionLog 1 status enum (START = 1)
// A file starts with the Event {wall_time, file_version: "brain.Event:2"}.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace bmos {

using Scalars = std::vector<std::pair<std::string, float>>;  // (tag, value)

uint32_t crc32c(const std::string& bytes);
uint32_t masked_crc32c(const std::string& bytes);
std::string tfrecord(const std::string& data);  // one framed record

// Encoded Event messages.
std::string file_version_event(double wall_time);
std::string session_start_event(double wall_time, int64_t step);
std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars);

class TensorBoardWriter {
 public:
  // A new file dir/events.out.tfevents.<unix seconds>.<hostname> (".1", ".2", ... added when the name is taken, so
  // names still sort in writing order). After the file_version record comes a SessionLog START at `first_step`:
  // TensorBoard then drops what older files of the folder hold at steps >= first_step (the steps a run logged after
  // the checkpoint it resumed from, trained again). Earlier files are never rewritten.
  TensorBoardWriter(const std::string& dir, int64_t first_step);
  // One Event holding every scalar at `step`, flushed.
  void add_scalars(int64_t step, const Scalars& scalars);
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& event);

  std::string path_;
  std::ofstream out_;
};

}  // namespace bmos
