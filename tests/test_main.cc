// The tests' main: GoogleTest's, after the OpenBLAS kernel fix that bmos itself applies (modules/blas_kernels.h), so a
// test that compares bmos's output with torch ops run in the test process compares results of the same kernels.
#include <gtest/gtest.h>

#include "modules/blas_kernels.h"

int main(int argc, char** argv) {
  bmos::restart_with_blas_fix(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
