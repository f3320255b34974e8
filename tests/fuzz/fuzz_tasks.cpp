// The zero-shot task readers (data/eval/tasks.h). The first byte picks one: 0 piqa (parts: valid.jsonl,
// valid-labels.lst), 1 winogrande, 2 hellaswag (bz2 when the file starts "BZh", else text), 3 arc (arc_easy and
// arc_challenge share it), 4 boolq.
#include "data/eval/tasks.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(tasks) {
  if (size == 0) return 0;
  const int which = data[0] % 5;
  const std::vector<std::string> parts = bmos_fuzz::split_parts(data + 1, size - 1, 2);
  try {
    switch (which) {
      case 0:
        bmos::read_piqa(bmos_fuzz::write_file("piqa/valid.jsonl", parts[0]),
                        bmos_fuzz::write_file("piqa/valid-labels.lst", parts[1]));
        break;
      case 1: bmos::read_winogrande(bmos_fuzz::write_file("winogrande/dev.jsonl", data + 1, size - 1)); break;
      case 2: {
        const bool bz2 = size >= 4 && std::string(reinterpret_cast<const char*>(data + 1), 3) == "BZh";
        bmos::read_hellaswag(bmos_fuzz::write_file(bz2 ? "hellaswag/val.txt.bz2" : "hellaswag/val.txt", data + 1,
                                                   size - 1));
        break;
      }
      case 3: bmos::read_arc(bmos_fuzz::write_file("arc/test.jsonl", data + 1, size - 1)); break;
      default: bmos::read_boolq(bmos_fuzz::write_file("boolq/dev.jsonl", data + 1, size - 1)); break;
    }
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
