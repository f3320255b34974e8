// Device-side building blocks shared by the kernels: the 16-bit element types, the tensor-core mma, ldmatrix, cp.async,
// streaming loads and programmatic-dependent-launch controls, each a thin inline-PTX wrapper (sm_80+; the
// griddepcontrol instructions only exist from sm_90 and compile to nothing below).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/tile_layout.h"

namespace bmos::kernels::device {

// ------------------------------------------------------------------------------------------------- element types
template <typename T>
struct Elem;

template <>
struct Elem<__half> {
  static constexpr std::uint32_t kMinusOnePair = tiles::kMinusOnePairF16;
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};

template <>
struct Elem<__nv_bfloat16> {
  static constexpr std::uint32_t kMinusOnePair = tiles::kMinusOnePairBF16;
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

// The 16 raw bits of a value.
__device__ __forceinline__ std::uint32_t bits16(__half v) { return __half_as_ushort(v); }
__device__ __forceinline__ std::uint32_t bits16(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }

// Loads element i of a 16-bit array as float.
template <typename T>
__device__ __forceinline__ float load_float(const T* p, std::int64_t i) {
  return Elem<T>::to_float(p[i]);
}

// ------------------------------------------------------------------------------------------------- tensor cores
// d (16 x 8, f32) += a (16 x 16, row) * b (16 x 8, col): mma.sync.aligned.m16n8k16 with T = f16 or bf16.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                          std::uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// The A fragment (+-1) of mma step jj from a lane's 32-bit word (tile_layout.h).
template <typename T>
__device__ __forceinline__ void unpack_a(std::uint32_t word, int jj, std::uint32_t (&a)[4]) {
#pragma unroll
  for (int r = 0; r < 4; ++r) a[r] = tiles::unpack_pair(word, jj, r, Elem<T>::kMinusOnePair);
}

// ldmatrix.sync.aligned.m8n8.x4: four 8x8 b16 matrices, row addresses from lanes 8i..8i+7 for matrix i.
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t smem_addr, std::uint32_t& r0, std::uint32_t& r1,
                                            std::uint32_t& r2, std::uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr));
}

__device__ __forceinline__ std::uint32_t smem_address(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// ------------------------------------------------------------------------------------------------- memory
// 16-byte global -> shared copy; src_bytes = 0 fills the destination with zeros (rows past the last token).
__device__ __forceinline__ void cp_async_16(std::uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
// 4-byte global -> shared copy (the weight words of a stage are 16 bytes apart in global memory).
__device__ __forceinline__ void cp_async_4(std::uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Weight bits are read exactly once: 128-bit load that does not allocate in L1.
__device__ __forceinline__ uint4 load_stream_128(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Activations are re-read by many blocks: plain read-only 128-bit load.
__device__ __forceinline__ uint4 load_128(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// --------------------------------------------------------------------------------- programmatic dependent launch
// Wait until the grids this one depends on have finished and their writes are visible (a no-op when the kernel was
// not launched with programmatic stream serialisation, and below sm_90).
__device__ __forceinline__ void wait_for_producer() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
// Let the next kernel in the stream (if launched with programmatic serialisation) start its prologue now.
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

}  // namespace bmos::kernels::device
