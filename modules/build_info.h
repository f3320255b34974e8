// Which sources this binary was built from (scripts/build_stamp.cmake, run at every build): run summaries record it,
// so a result can always be traced to a commit, and one from uncommitted code says so.
#pragma once

namespace bmos {

const char* build_commit();  // short hash of HEAD at build time; "unknown" outside a git checkout
bool build_dirty();          // tracked files differed from that commit (or git was unavailable)

}  // namespace bmos
