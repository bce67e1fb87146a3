#!/usr/bin/env bash
# Install a libactor build into a scratch prefix and use it from outside, as a
# user would:
#   1. CMake:      find_package(libactor 0.1) -> libactor::actor (shared)
#                                              and libactor::actor_static
#   2. pkg-config: cc $(pkg-config --cflags libactor) consumer.c
#                     $(pkg-config --libs libactor)           (shared)
#                  and the --static variant against libactor.a
# and run each program (tests/consumer/consumer.c).
#
#   usage: tests/consumer/run.sh BUILD_DIR SCRATCH_DIR
#
# BUILD_DIR is a configured and built libactor tree.  Everything is written
# under SCRATCH_DIR (prefix/, cmake-build/, pkg-config-build/, each emptied
# first).  The compiler and the sanitizers (ACTOR_SANITIZE) of BUILD_DIR are
# used for the consumer as well.  Exits non-zero on the first failure.
set -euo pipefail

die() { echo "run.sh: FAIL: $*" >&2; exit 1; }
step() { printf '\n==== %s\n' "$*"; }
run() { printf "+"; printf " %q" "$@"; printf "\n"; "$@"; }

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR SCRATCH_DIR" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -f "$1/CMakeCache.txt" ] || die "$1 is not a configured CMake build tree"
build=$(cd "$1" && pwd)
mkdir -p "$2"
scratch=$(cd "$2" && pwd)
case "$scratch" in
    *[[:space:]]*) die "scratch dir must not contain whitespace: '$scratch'" ;;
esac
prefix=$scratch/prefix

# Settings of the library's build, from its cache.
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n 1; }
cc=$(cache_get CMAKE_C_COMPILER)
generator=$(cache_get CMAKE_GENERATOR)
sanitize=$(cache_get ACTOR_SANITIZE)
[ -n "$cc" ] || die "no CMAKE_C_COMPILER in $build/CMakeCache.txt"
# A sanitized libactor needs a sanitized consumer (runtime and link).
san_flags=()
if [ -n "$sanitize" ]; then
    san_flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)
fi
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror "${san_flags[@]}")

echo "libactor build:  $build"
echo "scratch:         $scratch"
echo "compiler:        $cc${sanitize:+ (sanitize=$sanitize)}"

rm -rf "$prefix" "$scratch/cmake-build" "$scratch/pkg-config-build"

# ---------------------------------------------------------------------------
step "install into the scratch prefix"
run cmake --install "$build" --prefix "$prefix"

# Where GNUInstallDirs put things (lib, lib64, lib/<multiarch>, ...): find
# the installed .pc and CMake package rather than guessing.
mapfile -t pcs < <(find "$prefix" -name libactor.pc -path '*/pkgconfig/*')
[ ${#pcs[@]} -eq 1 ] || die "expected one installed libactor.pc, found ${#pcs[@]}: ${pcs[*]:-}"
pcdir=$(dirname "${pcs[0]}")
libdir=$(dirname "$pcdir")
mapfile -t cfgs < <(find "$prefix" -name libactorConfig.cmake)
[ ${#cfgs[@]} -eq 1 ] || die "expected one installed libactorConfig.cmake, found ${#cfgs[@]}"
echo "libdir:          ${libdir#"$prefix"/} (pkg-config dir ${pcdir#"$prefix"/})"
echo "CMake package:   ${cfgs[0]#"$prefix"/}"
for f in "$libdir/libactor.so" "$libdir/libactor.a" "$prefix/include/actor.h"; do
    [ -e "$f" ] || die "not installed: $f"
done

# Loader path for the shared programs: the scratch prefix first.
ld_path="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# check_links BINARY shared|static: the program uses the scratch libactor.so,
# or none at all.
check_links() {
    local deps
    deps=$(LD_LIBRARY_PATH="$ld_path" ldd "$1") || die "ldd $1 failed"
    if [ "$2" = shared ]; then
        grep -q "libactor\.so\.0 => $libdir/libactor\.so\.0 " <<<"$deps" \
            || die "$1 does not load $libdir/libactor.so.0:"$'\n'"$deps"
        echo "  loads $libdir/libactor.so.0"
    else
        ! grep -q 'libactor\.so' <<<"$deps" \
            || die "$1 links libactor.a but loads a libactor.so:"$'\n'"$deps"
        echo "  no libactor.so loaded (static)"
    fi
}

# ---------------------------------------------------------------------------
step "CMake: find_package(libactor 0.1) with CMAKE_PREFIX_PATH=$prefix"
cmake_args=(-S "$here" -B "$scratch/cmake-build"
            "-DCMAKE_PREFIX_PATH=$prefix"
            "-DCMAKE_C_COMPILER=$cc"
            -DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ -n "$generator" ] && cmake_args+=(-G "$generator")
if [ -n "$sanitize" ]; then
    cmake_args+=("-DCMAKE_C_FLAGS=${san_flags[*]}"
                 "-DCMAKE_EXE_LINKER_FLAGS=${san_flags[*]}")
fi
run cmake "${cmake_args[@]}"
found=$(sed -n 's/^libactor_DIR:PATH=//p' "$scratch/cmake-build/CMakeCache.txt")
case "$found" in
    "$prefix"/*) echo "libactor_DIR = $found" ;;
    *) die "find_package found libactor outside the scratch prefix: '$found'" ;;
esac
run cmake --build "$scratch/cmake-build"

step "run the CMake-built programs"
check_links "$scratch/cmake-build/consumer_shared" shared
run env LD_LIBRARY_PATH="$ld_path" "$scratch/cmake-build/consumer_shared"
check_links "$scratch/cmake-build/consumer_static" static
run "$scratch/cmake-build/consumer_static"

# ---------------------------------------------------------------------------
step "pkg-config: PKG_CONFIG_PATH=$pcdir"
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkgconf=${PKG_CONFIG:-pkg-config}
run "$pkgconf" --modversion libactor
pc_cflags=$("$pkgconf" --cflags libactor)
pc_libs=$("$pkgconf" --libs libactor)
pc_static_libs=$("$pkgconf" --static --libs libactor)
echo "  --cflags:        $pc_cflags"
echo "  --libs:          $pc_libs"
echo "  --static --libs: $pc_static_libs"
# The .pc must point into the scratch prefix, not where the build was
# configured to install.
pc_incdir=$("$pkgconf" --variable=includedir libactor)
pc_libdir=$("$pkgconf" --variable=libdir libactor)
[ "$pc_incdir/actor.h" -ef "$prefix/include/actor.h" ] \
    || die "libactor.pc includedir '$pc_incdir' is not $prefix/include"
[ "$pc_libdir" -ef "$libdir" ] \
    || die "libactor.pc libdir '$pc_libdir' is not $libdir"
echo "  includedir and libdir resolve into the scratch prefix"

mkdir -p "$scratch/pkg-config-build"
out=$scratch/pkg-config-build
# shellcheck disable=SC2086  # pkg-config output is a list of words
run "$cc" "${cflags[@]}" $pc_cflags '-DCONSUMER_KIND="pkg-config shared"' \
    "$here/consumer.c" -o "$out/consumer_pc_shared" $pc_libs
check_links "$out/consumer_pc_shared" shared
run env LD_LIBRARY_PATH="$ld_path" "$out/consumer_pc_shared"

# Static: the same flags with libactor.a in place of -lactor; the private
# requirements (libuv, msgpack) must supply the rest.
static_libs=()
for w in $pc_static_libs; do
    [ "$w" = -lactor ] && w=-l:libactor.a
    static_libs+=("$w")
done
# shellcheck disable=SC2086
run "$cc" "${cflags[@]}" $pc_cflags '-DCONSUMER_KIND="pkg-config static"' \
    "$here/consumer.c" -o "$out/consumer_pc_static" "${static_libs[@]}"
check_links "$out/consumer_pc_static" static
run "$out/consumer_pc_static"

# libactor-python (built with the Python layer): a C host that links it
# through pkg-config gets libpython on its link line.
if [ -f "$pcdir/libactor-python.pc" ]; then
    step "pkg-config: libactor-python"
    py_libs=$("$pkgconf" --libs libactor-python)
    echo "  --libs:          $py_libs"
    case " $py_libs " in
        *" -lactor-python "*) ;;
        *) die "libactor-python.pc --libs lacks -lactor-python: $py_libs" ;;
    esac
    case " $py_libs " in
        *" -lpython3."*) ;;
        *) die "libactor-python.pc --libs lacks libpython: $py_libs" ;;
    esac
    # shellcheck disable=SC2086
    run "$cc" "${cflags[@]}" $pc_cflags '-DCONSUMER_KIND="pkg-config python"' \
        "$here/consumer.c" -o "$out/consumer_pc_python" $py_libs
    run env LD_LIBRARY_PATH="$ld_path" "$out/consumer_pc_python"
fi

step "PASS: find_package (shared, static) and pkg-config (shared, static) against $prefix"
