#!/usr/bin/env bash
# Use an installed libactor from outside, as a user would:
#   1. CMake:      find_package(libactor 0.1) -> libactor::actor (shared)
#                  and libactor::actor_static; with the python component,
#                  libactor::actor_python; and the version rule of
#                  docs/abi.md (another major, or a newer minor, is refused)
#   2. pkg-config: cc $(pkg-config --cflags libactor) consumer.c
#                     $(pkg-config --libs libactor)           (shared)
#                  the --static variant against libactor.a, and
#                  libactor-python.pc when it is installed
# and run each program (tests/consumer/consumer.c).  A program linked with
# libactor-python runs Python actors on subint and subproc and the
# subint_fork probe with no LIBACTOR_* variable set: the helper programs
# must be found where the library is, and libpython must come with the
# link line (the programs are run with LD_BIND_NOW=1, so any undefined
# symbol fails at start).
#
#   usage: tests/consumer/run.sh BUILD_DIR SCRATCH_DIR
#          tests/consumer/run.sh --installed SCRATCH_DIR
#
# BUILD_DIR is a configured and built libactor tree: it is installed into
# SCRATCH_DIR/prefix first (a prefix it was not configured for, so the
# helpers are found relocatably), and its compiler and sanitizers
# (ACTOR_SANITIZE) are used for the consumer.  --installed uses what is
# installed on the system (/usr, e.g. from the Debian packages: scripts/
# package) and the system compiler.  Everything is written under
# SCRATCH_DIR (prefix/, cmake-build/, pkg-config-build/, each emptied
# first).  Exits non-zero on the first failure.
set -euo pipefail

die() { echo "run.sh: FAIL: $*" >&2; exit 1; }
step() { printf '\n==== %s\n' "$*"; }
run() { printf "+"; printf " %q" "$@"; printf "\n"; "$@"; }

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR|--installed SCRATCH_DIR" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$2"
scratch=$(cd "$2" && pwd)
case "$scratch" in
    *[[:space:]]*) die "scratch dir must not contain whitespace: '$scratch'" ;;
esac
pkgconf=${PKG_CONFIG:-pkg-config}
# The helpers must be found without these (the whole point of the Python
# checks); a developer's environment must not make the test pass.
unset LIBACTOR_PYHOST LIBACTOR_SUBINT_FORK_PROBE LIBACTOR_FORKSERVER

rm -rf "$scratch/prefix" "$scratch/cmake-build" "$scratch/pkg-config-build"
san_flags=()
generator=
if [ "$1" = --installed ]; then
    installed=1
    prefix=/usr
    cc=${CC:-cc}
    sanitize=
    echo "libactor:        installed in $prefix"
else
    installed=0
    [ -f "$1/CMakeCache.txt" ] || die "$1 is not a configured CMake build tree"
    build=$(cd "$1" && pwd)
    prefix=$scratch/prefix
    # Settings of the library's build, from its cache.
    cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n 1; }
    cc=$(cache_get CMAKE_C_COMPILER)
    generator=$(cache_get CMAKE_GENERATOR)
    sanitize=$(cache_get ACTOR_SANITIZE)
    [ -n "$cc" ] || die "no CMAKE_C_COMPILER in $build/CMakeCache.txt"
    # A sanitized libactor needs a sanitized consumer (runtime and link).
    if [ -n "$sanitize" ]; then
        san_flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)
    fi
    echo "libactor build:  $build"
fi
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror "${san_flags[@]}")
echo "scratch:         $scratch"
echo "compiler:        $cc${sanitize:+ (sanitize=$sanitize)}"

# ---------------------------------------------------------------------------
if [ $installed = 0 ]; then
    step "install into the scratch prefix"
    run cmake --install "$build" --prefix "$prefix"
fi

# Where GNUInstallDirs put things (lib, lib64, lib/<multiarch>, ...): find
# the installed .pc and CMake package rather than guessing.
mapfile -t pcs < <(find "$prefix"/lib* -name libactor.pc -path '*/pkgconfig/*' 2>/dev/null)
[ ${#pcs[@]} -eq 1 ] || die "expected one installed libactor.pc, found ${#pcs[@]}: ${pcs[*]:-}"
pcdir=$(dirname "${pcs[0]}")
libdir=$(dirname "$pcdir")
mapfile -t cfgs < <(find "$prefix"/lib* -name libactorConfig.cmake 2>/dev/null)
[ ${#cfgs[@]} -eq 1 ] || die "expected one installed libactorConfig.cmake, found ${#cfgs[@]}"
echo "libdir:          ${libdir#"$prefix"/} (pkg-config dir ${pcdir#"$prefix"/})"
echo "CMake package:   ${cfgs[0]#"$prefix"/}"
for f in "$libdir/libactor.so" "$libdir/libactor.a" "$prefix/include/libactor/actor.h"; do
    [ -e "$f" ] || die "not installed: $f"
done
[ ! -e "$prefix/include/actor.h" ] || die "$prefix/include/actor.h: the header belongs in include/libactor/"
python=0 with=
if [ -f "$pcdir/libactor-python.pc" ]; then
    python=1 with=", python"
    for f in "$libdir/libactor-python.so" "$libdir/libactor-python.a"; do
        [ -e "$f" ] || die "not installed: $f"
    done
    # The helpers: in their directory (<libexecdir>/libactor/<SONAME>), not
    # in bin.
    for h in actor-pyhost subint-fork-probe actor-forkserver; do
        mapfile -t hs < <(find "$prefix"/lib* "$prefix"/bin -maxdepth 0 -print0 2>/dev/null |
                              xargs -0 -I{} find {} -name "$h" 2>/dev/null | sort -u)
        [ ${#hs[@]} -eq 1 ] || die "expected one installed $h, found ${#hs[@]}: ${hs[*]:-}"
        case "${hs[0]}" in
            */libactor/0/"$h") echo "helper:          ${hs[0]#"$prefix"/}" ;;
            *) die "$h installed as ${hs[0]}, not in <libexecdir>/libactor/0/" ;;
        esac
        [ -x "${hs[0]}" ] || die "${hs[0]} is not executable"
    done
fi

# Loader path for the shared programs: the scratch prefix first.
if [ $installed = 1 ]; then
    ld_path=${LD_LIBRARY_PATH:-}
else
    ld_path="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# check_links BINARY shared|static|python: the program uses the installed
# libactor.so (or libactor-python.so), or none at all.
check_links() {
    local deps lib=libactor
    deps=$(LD_LIBRARY_PATH="$ld_path" ldd "$1") || die "ldd $1 failed"
    [ "$2" = python ] && lib=libactor-python
    if [ "$2" = static ]; then
        ! grep -q 'libactor\(-python\)\?\.so' <<<"$deps" \
            || die "$1 links libactor.a but loads a libactor.so:"$'\n'"$deps"
        echo "  no libactor.so loaded (static)"
        return
    fi
    grep -q "$lib\.so\.0 => $libdir/$lib\.so\.0 " <<<"$deps" \
        || die "$1 does not load $libdir/$lib.so.0:"$'\n'"$deps"
    echo "  loads $libdir/$lib.so.0"
    if [ "$2" = python ]; then
        ! grep -q 'libactor\.so' <<<"$deps" \
            || die "$1 loads libactor.so as well as libactor-python.so:"$'\n'"$deps"
        grep -q 'libpython3\.[0-9]*\.so' <<<"$deps" \
            || die "$1 does not load libpython (the link line must carry it):"$'\n'"$deps"
        echo "  loads libpython, not libactor.so"
    fi
}

# Under LeakSanitizer: the library never finalises CPython (an abandoned
# actor thread may still be in it: docs/python.md), so what CPython
# allocated is still held at exit by design.  Only that is suppressed.
if [ -n "$sanitize" ]; then
    printf 'leak:libpython3\n' > "$scratch/lsan.supp"
    export LSAN_OPTIONS="suppressions=$scratch/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi

# consumer BINARY [ARGS]: run it with every symbol bound at start.
consumer() {
    run env LD_LIBRARY_PATH="$ld_path" LD_BIND_NOW=1 "$@"
}

# ---------------------------------------------------------------------------
step "CMake: find_package(libactor 0.1)${with:+ and its python component}"
cmake_args=(-S "$here" -B "$scratch/cmake-build"
            "-DCMAKE_C_COMPILER=$cc"
            -DCMAKE_BUILD_TYPE=RelWithDebInfo
            "-DCONSUMER_EXPECT_PYTHON=$python")
[ $installed = 0 ] && cmake_args+=("-DCMAKE_PREFIX_PATH=$prefix")
[ -n "$generator" ] && cmake_args+=(-G "$generator")
if [ -n "$sanitize" ]; then
    cmake_args+=("-DCMAKE_C_FLAGS=${san_flags[*]}"
                 "-DCMAKE_EXE_LINKER_FLAGS=${san_flags[*]}")
fi
run cmake "${cmake_args[@]}"
found=$(sed -n 's/^libactor_DIR:PATH=//p' "$scratch/cmake-build/CMakeCache.txt")
case "$found" in
    "$prefix"/*) echo "libactor_DIR = $found" ;;
    *) die "find_package found libactor outside $prefix: '$found'" ;;
esac
run cmake --build "$scratch/cmake-build"

step "run the CMake-built programs"
check_links "$scratch/cmake-build/consumer_shared" shared
consumer "$scratch/cmake-build/consumer_shared"
check_links "$scratch/cmake-build/consumer_static" static
consumer "$scratch/cmake-build/consumer_static"
if [ $python = 1 ]; then
    check_links "$scratch/cmake-build/consumer_python" python
    consumer "$scratch/cmake-build/consumer_python" "$here"
fi

# ---------------------------------------------------------------------------
step "pkg-config: $pcdir"
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
run "$pkgconf" --modversion libactor
pc_cflags=$("$pkgconf" --cflags libactor)
pc_libs=$("$pkgconf" --libs libactor)
pc_static_libs=$("$pkgconf" --static --libs libactor)
echo "  --cflags:        $pc_cflags"
echo "  --libs:          $pc_libs"
echo "  --static --libs: $pc_static_libs"
# The .pc must point into the prefix, not where the build was configured to
# install.
pc_incdir=$("$pkgconf" --variable=includedir libactor)
pc_libdir=$("$pkgconf" --variable=libdir libactor)
[ "$pc_incdir/libactor/actor.h" -ef "$prefix/include/libactor/actor.h" ] \
    || die "libactor.pc includedir '$pc_incdir' is not $prefix/include"
[ "$pc_libdir" -ef "$libdir" ] \
    || die "libactor.pc libdir '$pc_libdir' is not $libdir"
echo "  includedir and libdir resolve into $prefix"

mkdir -p "$scratch/pkg-config-build"
out=$scratch/pkg-config-build
# shellcheck disable=SC2086  # pkg-config output is a list of words
run "$cc" "${cflags[@]}" $pc_cflags '-DCONSUMER_KIND="pkg-config shared"' \
    "$here/consumer.c" -o "$out/consumer_pc_shared" $pc_libs
check_links "$out/consumer_pc_shared" shared
consumer "$out/consumer_pc_shared"

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
consumer "$out/consumer_pc_static"

# libactor-python: a C host that links it through pkg-config gets libpython
# on its link line.
if [ $python = 1 ]; then
    step "pkg-config: libactor-python"
    py_cflags=$("$pkgconf" --cflags libactor-python)
    py_libs=$("$pkgconf" --libs libactor-python)
    echo "  --cflags:        $py_cflags"
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
    run "$cc" "${cflags[@]}" $py_cflags -DCONSUMER_PYTHON=1 \
        '-DCONSUMER_KIND="pkg-config python"' \
        "$here/consumer.c" -o "$out/consumer_pc_python" $py_libs
    check_links "$out/consumer_pc_python" python
    consumer "$out/consumer_pc_python" "$here"
fi

step "PASS: find_package and pkg-config (shared, static$with) against $prefix"
