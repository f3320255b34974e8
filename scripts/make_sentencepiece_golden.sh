#!/usr/bin/env bash
# Writes tests/golden/sentencepiece_ids.jsonl: ids that the SentencePiece command-line encoder (Debian package
# `sentencepiece`, spm_encode: the library run in its own process) gives for single-line strings taken from
# tests/golden/gpt2_ids.jsonl, with the stories260K tok512.model and the Llama-2 tokenizer.model.
# tests/test_tokenizer_sentencepiece.cpp holds the plugin to it. Run at test-authoring time only:
#   apt-get install sentencepiece && scripts/make_sentencepiece_golden.sh ../shared/data
set -euo pipefail
DATA=${1:?usage: $0 SHARED_DATA_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/tests/golden/sentencepiece_ids.jsonl
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# One-line, printable strings (spm_encode reads lines), the first 150.
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const keep = lines.map(l => l.text).filter(t => t.length > 0 && !/[\u0000-\u0008\n\r\u2028\u2029]/.test(t));
  process.stdout.write(keep.slice(0, 150).join("\n") + "\n");
' "$ROOT/tests/golden/gpt2_ids.jsonl" > "$TMP/texts.txt"
spm_encode --model="$DATA/models/stories260K/tok512.model" --output_format=id < "$TMP/texts.txt" > "$TMP/tok512.txt"
spm_encode --model="$DATA/models/llama2-tokenizer/tokenizer.model" --output_format=id < "$TMP/texts.txt" > "$TMP/llama2.txt"
node -e '
  const fs = require("fs");
  const [texts, a, b] = process.argv.slice(1, 4).map(f => fs.readFileSync(f, "utf8").split("\n"));
  const ids = (s) => s.trim() === "" ? [] : s.trim().split(" ").map(Number);
  const out = [];
  for (let i = 0; i + 1 < texts.length; i++)
    out.push(JSON.stringify({ text: texts[i], tok512: ids(a[i]), llama2: ids(b[i]) }));
  fs.writeFileSync(process.argv[4], out.join("\n") + "\n");
  console.log("wrote " + out.length + " strings to " + process.argv[4]);
' "$TMP/texts.txt" "$TMP/tok512.txt" "$TMP/llama2.txt" "$OUT"
