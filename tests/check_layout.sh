#!/usr/bin/env bash
# The folder layout's promise, checked on every include: each step of the flow includes only itself and the steps
# before it (README "The folders"), so nothing reaches back up the flow:
#   kernels/  includes kernels/ only (it builds alone, without torch)
#   data/     includes data/ only
#   modules/  includes modules/, kernels/ (and data/ nothing: a model does not know about corpora)
#   trainer/  never includes trainer/cli/ (flags stop at the command line); no library file reads FLAGS_*
# Usage: tests/check_layout.sh [SOURCE_DIR]   (exit 1 listing every offending line)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
bad=0
check() {  # folder, allowed include prefixes (regex), what the rule is
  local folder=$1 allowed=$2 rule=$3 hits
  hits=$(grep -rnE '^#include "' "$folder" --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' |
         grep -vE "#include \"($allowed)" || true)
  if [ -n "$hits" ]; then
    echo "layout: $rule:"
    echo "$hits"
    bad=1
  fi
}
check kernels 'kernels/' "kernels/ includes only kernels/"
check data 'data/|sentencepiece_abi\.h' "data/ includes only data/ (the job file is translated in trainer/job/)"
check modules 'modules/|kernels/|bmos_build_info\.h' "modules/ includes only modules/ and kernels/ (and the build's generated bmos_build_info.h)"
hits=$(grep -rnE '^#include "trainer/cli/' trainer --include='*.h' --include='*.cpp' | grep -v '^trainer/cli/' || true)
if [ -n "$hits" ]; then echo "layout: only trainer/cli/ includes trainer/cli/:"; echo "$hits"; bad=1; fi
hits=$(grep -rnE '\bFLAGS_[a-z]' trainer data modules kernels --include='*.h' --include='*.cpp' | grep -v '^trainer/cli/' || true)
if [ -n "$hits" ]; then echo "layout: library code reads a command-line flag (parse it in trainer/cli/):"; echo "$hits"; bad=1; fi
if [ $bad -eq 0 ]; then echo "layout: every include follows the flow"; fi
exit $bad
