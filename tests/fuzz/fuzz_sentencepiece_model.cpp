// A SentencePiece .model as our side reads it, without protobuf (data/tokenizers/sentencepiece_model.h: the ModelProto
// wire format, pieces, scores, types, normaliser), and whether ScoreBpe may encode it.
#include "data/tokenizers/sentencepiece_model.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(sentencepiece_model) {
  const std::string path = bmos_fuzz::write_file("tokenizer.model", data, size);
  try {
    const bmos::SentencePieceModel m = bmos::read_sentencepiece_model(path);
    m.score_bpe_exact();
    m.byte_piece0();
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
