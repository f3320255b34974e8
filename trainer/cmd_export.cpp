// Placeholder until the subcommand lands; it says so instead of pretending.
#include <stdexcept>

#include "trainer/commands.h"

namespace bmos {
int cmd_export(const std::vector<std::string>&) { throw std::runtime_error("'bmos export' is not built yet"); }
}  // namespace bmos
