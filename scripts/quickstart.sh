#!/usr/bin/env bash
# The main job on a default that needs no downloads: set up, build, pretrain a tiny byte-level LLaMA teacher on the
# King James Bible (Debian's bible-kjv), distil a 1-bit BinaryMoS (E=4) student from it, print both perplexities and
# a sampled passage. Builds only the bmos binary (the test suite is scripts/build.sh without TARGETS).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
scripts/setup.sh
TARGETS=bmos scripts/build.sh
mkdir -p runs/quickstart-corpus
if [ ! -s runs/quickstart-corpus/kjv.heldout.txt ]; then
  bible -f 'Genesis1:1-Revelation22:21' | sed 's/^[^ ]* //' > runs/quickstart-corpus/kjv.txt
  head -n -1500 runs/quickstart-corpus/kjv.txt > runs/quickstart-corpus/kjv.train.txt   # all but the last 1500 verses
  tail -n 1500 runs/quickstart-corpus/kjv.txt > runs/quickstart-corpus/kjv.heldout.txt  # held out (end of Revelation)
fi
build/bmos train configs/quickstart_teacher.yaml
mkdir -p runs/quickstart-student
build/bmos train configs/quickstart_student.yaml | tee runs/quickstart-student/result.txt
echo "sample from the 1-bit student (temperature 0.8, top-p 0.9, seed 42):"
build/bmos generate --model runs/quickstart-student --prompt "And God said" --steps 160 --temperature 0.8 --top_p 0.9 \
  --seed 42
