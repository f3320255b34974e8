#include "modules/build_info.h"

#include "bmos_build_info.h"  // generated into the build folder

namespace bmos {

const char* build_commit() { return BMOS_BUILD_COMMIT; }
bool build_dirty() { return BMOS_BUILD_DIRTY; }

}  // namespace bmos
