#!/usr/bin/env bash
# Builds binarymos against libtorch 2.x and runs its tests: a Debian trixie chroot (debootstrap) with trixie's
# libtorch-dev (2.6) and our other -dev packages, the working tree and ../shared bind-mounted read-only, a build folder
# inside the chroot. For developers (root, Debian's registry reachable); CI does not run it.
#   scripts/check_torch2.sh                 make/refresh the chroot, build, ctest (about 45 min on 2 cores, first time)
#   scripts/check_torch2.sh --no-tests      build only
# Env: CHROOT (default /var/tmp/bmos-trixie), JOBS (default 2), MIRROR (default http://deb.debian.org/debian).
# Prints the torch version it built against and ctest's summary; exit status is ctest's.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SHARED=$(cd .. && pwd)/shared
CHROOT=${CHROOT:-/var/tmp/bmos-trixie}
JOBS=${JOBS:-2}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
RUN_TESTS=1
[ "${1:-}" = "--no-tests" ] && RUN_TESTS=0
[ "$(id -u)" -eq 0 ] || { echo "check_torch2: needs root (debootstrap, chroot, bind mounts)"; exit 1; }

# Our packages as trixie names them (scripts/setup.sh's list, less the quickstart's text).
PKGS=(cmake ninja-build g++ libtorch-dev libyaml-cpp-dev libhdf5-dev libgflags-dev libgoogle-glog-dev libgtest-dev
      libgmock-dev libbenchmark-dev libsentencepiece-dev nlohmann-json3-dev libopenblas0-pthread libbz2-dev bzip2 zlib1g-dev
      libtcmalloc-minimal4t64 libgloo-dev pkgconf ca-certificates)

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
  mountpoint -q "$2" && return 0
  mount --bind "$1" "$2"
  mounts+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}
bind /proc "$CHROOT/proc"
bind /dev "$CHROOT/dev"
bind "$REPO" "$CHROOT/src/binarymos" ro
[ -d "$SHARED" ] && bind "$SHARED" "$CHROOT/src/shared" ro
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true

in_chroot() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
echo "check_torch2: installing ${#PKGS[@]} packages in the chroot"
in_chroot apt-get update -qq
in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
torch_version=$(in_chroot dpkg-query -W -f='${Version}' libtorch-dev)
echo "check_torch2: libtorch-dev $torch_version, g++ $(in_chroot g++ -dumpversion), chroot ready after $(( $(date +%s) - start )) s"

# The build folder lives in the chroot (the tree is read-only there); tests write under /tmp of the chroot.
build_start=$(date +%s)
in_chroot bash -c "cmake -S /src/binarymos -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBMOS_CUDA=OFF >/build.log 2>&1 &&
                   cmake --build /build -j $JOBS >>/build.log 2>&1" || { tail -n 60 "$CHROOT/build.log"; exit 1; }
echo "check_torch2: built in $(( $(date +%s) - build_start )) s"
[ "$RUN_TESTS" -eq 1 ] || exit 0
test_start=$(date +%s)
status=0
in_chroot bash -c "cd /build && OMP_WAIT_POLICY=PASSIVE ctest -j $JOBS --output-on-failure >/ctest.log 2>&1" || status=$?
grep -E 'tests passed|Total Test time|\*\*\*Failed|\(Failed\)|Not Run|Skipped|SKIP' "$CHROOT/ctest.log" | tail -n 30
echo "check_torch2: ctest in $(( $(date +%s) - test_start )) s against libtorch $torch_version (log: $CHROOT/ctest.log);" \
     "total $(( $(date +%s) - start )) s"
exit $status
