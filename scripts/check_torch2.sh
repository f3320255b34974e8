#!/usr/bin/env bash
# Builds binarymos against libtorch 2.x and runs its tests: a Debian trixie chroot (debootstrap) with trixie's
# libtorch-dev (2.6) and our other -dev packages, the working tree and ../shared bind-mounted read-only, a build folder
# inside the chroot. For developers (root, Debian's registry reachable); CI does not run it.
#   scripts/check_torch2.sh                 make/refresh the chroot, build, ctest (about 45 min on 2 cores, first time)
#   scripts/check_torch2.sh --no-tests      build only
#   scripts/check_torch2.sh --cuda          build only, against trixie's CUDA libtorch (contrib libtorch-cuda-dev 2.6,
#                                           non-free nvcc 12.4 and NCCL): every CUDA-only file (the packed layer's CUDA
#                                           path, NCCL, the kernels) compiled and linked; nothing runs (no GPU here)
# Builds the committed tree (git archive HEAD, so edits in progress do not leak into the result).
# Env: CHROOT (default /var/tmp/bmos-trixie, or -cuda), JOBS (default 2), MIRROR (default http://deb.debian.org/debian).
# Prints the torch version it built against and ctest's summary; exit status is ctest's (the build's with --cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SHARED=$(cd .. && pwd)/shared
CUDA=0
TARGETS=""
RUN_TESTS=1
[ "${1:-}" = "--no-tests" ] && RUN_TESTS=0
[ "${1:-}" = "--cuda" ] && { CUDA=1; RUN_TESTS=0; }
SUFFIX=""
[ $CUDA -eq 1 ] && SUFFIX=-cuda
CHROOT=${CHROOT:-/var/tmp/bmos-trixie$SUFFIX}
JOBS=${JOBS:-2}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || { echo "check_torch2: needs root (debootstrap, chroot, bind mounts)"; exit 1; }

# Our packages as trixie names them (scripts/setup.sh's list, less the quickstart's text).
PKGS=(cmake ninja-build g++ libtorch-dev libyaml-cpp-dev libhdf5-dev libgflags-dev libgoogle-glog-dev libgtest-dev
      libgmock-dev libbenchmark-dev libsentencepiece-dev nlohmann-json3-dev libopenblas0-pthread libbz2-dev bzip2 zlib1g-dev
      libtcmalloc-minimal4t64 libgloo-dev libcpp-httplib-dev curl pkgconf ca-certificates)

start=$(date +%s)
if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  echo "check_torch2: debootstrap trixie into $CHROOT"
  debootstrap --variant=minbase trixie "$CHROOT" "$MIRROR" >"$CHROOT.debootstrap.log" 2>&1 ||
    { tail -n 20 "$CHROOT.debootstrap.log"; exit 1; }
fi

mounts=()
cleanup() { for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mountpoint -q "$2" && umount -l "$2"  # a stale mount from an interrupted run
  mount --bind "$1" "$2"
  mounts+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}
bind /proc "$CHROOT/proc"
bind /dev "$CHROOT/dev"
SNAP=$CHROOT.src
rm -rf "$SNAP" && mkdir -p "$SNAP" && git -C "$REPO" archive HEAD | tar -x -C "$SNAP"
echo "check_torch2: building commit $(git -C "$REPO" rev-parse --short HEAD)"
bind "$SNAP" "$CHROOT/src/binarymos" ro
[ -d "$SHARED" ] && bind "$SHARED" "$CHROOT/src/shared" ro
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true

in_chroot() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
echo "check_torch2: installing ${#PKGS[@]} packages in the chroot"
CMAKE_ARGS=(-DBMOS_CUDA=OFF)
if [ $CUDA -eq 1 ]; then
  echo "deb $MIRROR trixie contrib non-free" >"$CHROOT/etc/apt/sources.list.d/contrib-non-free.list"
  PKGS=("${PKGS[@]/libtorch-dev/libtorch-cuda-dev}")
  PKGS=("${PKGS[@]/libgloo-dev/libgloo-cuda-dev}" nvidia-cuda-toolkit libnccl-dev g++-13)
  # nvcc 12.4 takes GCC <= 13: the whole build uses g++-13, so one libstdc++ links it. libtorch_cuda needs cuDNN,
  # which Debian's nvidia-cudnn downloads from NVIDIA in its postinst (unreachable here): the link allows the
  # shared libraries' unresolved symbols, as nothing is run.
  CMAKE_ARGS=(-DCMAKE_CXX_COMPILER=g++-13 -DCMAKE_C_COMPILER=gcc-13 -DCMAKE_CUDA_HOST_COMPILER=g++-13
              -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined)
  # trixie's libgtest.a was built by GCC 14 (it needs libstdc++'s __cxa_call_terminate), so GoogleTest programs do
  # not link with g++-13: build bmos and the kernels' own programs (no GoogleTest).
  TARGETS="--target bmos test_binarymos_cuda bench_binarymos_cuda test_cuda_tile_layout"
fi
in_chroot apt-get update -qq
if ! in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" \
       >"$CHROOT/apt.log" 2>&1; then
  # Only nvidia-cudnn's download may fail (see above); its dependants stay unpacked, which is all a build needs.
  if [ $CUDA -eq 1 ] && ! grep "^dpkg: error processing package" "$CHROOT/apt.log" |
       grep -qv "nvidia-cudnn\|libtorch-cuda\|libgloo-cuda\|libtensorpipe-cuda"; then
    echo "check_torch2: nvidia-cudnn could not download cuDNN (no internet): building without it"
  else
    tail -n 30 "$CHROOT/apt.log"; exit 1
  fi
fi
torch_version=$(in_chroot dpkg-query -W -f='${Version}' "$([ $CUDA -eq 1 ] && echo libtorch-cuda-dev || echo libtorch-dev)")
echo "check_torch2: libtorch $torch_version, $([ $CUDA -eq 1 ] && echo "g++ 13, $(in_chroot nvcc --version | tail -n 2 | head -n 1)" || echo "g++ $(in_chroot g++ -dumpversion)"), chroot ready after $(( $(date +%s) - start )) s"

# The build folder lives in the chroot (the tree is read-only there); tests write under /tmp of the chroot.
build_start=$(date +%s)
in_chroot bash -c "cmake -S /src/binarymos -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS[*]} >/build.log 2>&1 &&
                   cmake --build /build -j $JOBS ${TARGETS:-} >>/build.log 2>&1" || { tail -n 60 "$CHROOT/build.log"; exit 1; }
grep "binarymos:" "$CHROOT/build.log" || true
echo "check_torch2: built in $(( $(date +%s) - build_start )) s"
[ "$RUN_TESTS" -eq 1 ] || exit 0
test_start=$(date +%s)
status=0
in_chroot bash -c "cd /build && OMP_WAIT_POLICY=PASSIVE ctest -j $JOBS --output-on-failure >/ctest.log 2>&1" || status=$?
grep -E 'tests passed|Total Test time|\*\*\*Failed|\(Failed\)|Not Run|Skipped|SKIP' "$CHROOT/ctest.log" | tail -n 30
echo "check_torch2: ctest in $(( $(date +%s) - test_start )) s against libtorch $torch_version (log: $CHROOT/ctest.log);" \
     "total $(( $(date +%s) - start )) s"
exit $status
