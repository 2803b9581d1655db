#!/usr/bin/env bash
# test.sh: the whole test suite, as CI runs it.
#   1. gcc, Release, warnings as errors: build everything into build/, run ctest
#   2. clang with ASan+UBSan: build into build-asan/, run ctest
#   3. clang ThreadSanitizer: build into build-tsan/ only the unit tests of
#      code that starts threads (TSAN_TESTS), run them with OpenMP and
#      OpenBLAS at one thread (libgomp is not instrumented), tests/tsan.supp
#   4. clang libFuzzer: build into build-fuzz/, run each fuzz target for
#      FUZZ_SECONDS (default 30) on a copy of its corpus, JOBS targets at a time
# plus a clang-format check (fatal; FORMAT_STRICT=0 makes it a report).
# Runs every stage even when one fails; exits non-zero if any failed.
# Env: JOBS (default 2), FUZZ_SECONDS, STAGES (default "gcc asan tsan fuzz"),
# TSAN_TESTS, BUILD (default build: the stages use BUILD, BUILD-asan,
# BUILD-tsan and BUILD-fuzz).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
STAGES=${STAGES:-gcc asan tsan fuzz}
BUILD=${BUILD:-$ROOT/build}
FAILED=()
T0=$(date +%s)

stage() {
    echo
    echo "==== $* ($(($(date +%s) - T0)) s) ===="
}

# ctest waits for every process holding its output pipes: a test that dies
# and leaves a helper server behind would hang it, so bound the whole run.
run_ctest() {
    local dir=$1
    (cd "$dir" && timeout -k 30 "${CTEST_TIMEOUT:-2400}" ctest --output-on-failure -j"$JOBS" \
        --timeout 900)
}

# clang-format (v14, .clang-format): every tracked .c and .h; fatal unless FORMAT_STRICT=0
# (a table that must keep its layout sits between clang-format off/on comments).
if [ -f "$ROOT/.clang-format" ] && command -v clang-format >/dev/null; then
    stage "clang-format check"
    unformatted=()
    while IFS= read -r f; do
        clang-format --dry-run --Werror "$ROOT/$f" >/dev/null 2>&1 || unformatted+=("$f")
    done < <(cd "$ROOT" && git ls-files '*.c' '*.h' 2>/dev/null)
    if [ ${#unformatted[@]} -gt 0 ]; then
        echo "not clang-formatted (${#unformatted[@]}): ${unformatted[*]}"
        [ "${FORMAT_STRICT:-1}" = 1 ] && FAILED+=("clang-format")
    else
        echo "all files formatted"
    fi
fi

if [[ " $STAGES " == *" gcc "* ]]; then
    stage "gcc Release -Werror: build"
    if CC=gcc CXX=g++ cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVFS_WERROR=ON \
        >/dev/null && cmake --build "$BUILD" -j"$JOBS"; then
        stage "gcc Release: ctest"
        run_ctest "$BUILD" || FAILED+=("gcc ctest")
    else
        FAILED+=("gcc build")
    fi
fi

if [[ " $STAGES " == *" asan "* ]]; then
    stage "clang ASan+UBSan: build"
    if CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DVFS_SANITIZE=ON >/dev/null && cmake --build "$BUILD-asan" -j"$JOBS"; then
        stage "clang ASan+UBSan: ctest"
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
            run_ctest "$BUILD-asan" || FAILED+=("asan ctest")
    else
        FAILED+=("asan build")
    fi
fi

# TSan costs 5-15x in time: only the tests of code with its own threads
# (jobs.c worker pool, fetch.c downloader, datasets.c verifier, the training
# jobs in models*.c, the embed producer thread in engine/backbone/embed.c,
# the runtime's fork-join pool and the kernels split over it).
TSAN_TESTS=${TSAN_TESTS:-test_fs_jobs test_fs_fetch test_fs_datasets test_fs_models test_backbone test_runtime_pool test_runtime_kernels test_train_grad test_train_loop}
if [[ " $STAGES " == *" tsan "* ]]; then
    stage "clang ThreadSanitizer: build ($TSAN_TESTS)"
    tsan_flags="-fsanitize=thread -fno-omit-frame-pointer"
    # shellcheck disable=SC2086
    if CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_FLAGS="$tsan_flags" -DCMAKE_CXX_FLAGS="$tsan_flags" \
        -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null &&
        cmake --build "$BUILD-tsan" -j"$JOBS" --target $TSAN_TESTS; then
        stage "clang ThreadSanitizer: ctest"
        tsan_re="^($(echo "$TSAN_TESTS" | tr -s ' ' '|'))\$"
        (cd "$BUILD-tsan" && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
            TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan.supp}" \
            timeout -k 30 "${CTEST_TIMEOUT:-2400}" ctest --output-on-failure -j"$JOBS" \
            --timeout 600 -R "$tsan_re") || FAILED+=("tsan ctest")
    else
        FAILED+=("tsan build")
    fi
fi

# fuzz_one NAME BIN: runs one libFuzzer target on a copy of its corpus, its report into
# $FUZZ_OUT/NAME.out; exits non-zero when the fuzzer found something
fuzz_one() {
    local name=$1 bin=$2 work rc=0
    local corpus="$ROOT/tests/fuzz/corpus/${name#fuzz_}"
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus/." "$work/"
    if ! "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 "$work" >"$work.log" 2>&1; then
        tail -n 60 "$work.log" >"$FUZZ_OUT/$name.out"
        rc=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work.log" >"$FUZZ_OUT/$name.out" || true
    fi
    rm -rf "$work" "$work.log"
    return $rc
}

# fuzz_collect NAME:PID...: waits for each, prints its report, records failures
fuzz_collect() {
    local e
    for e in "$@"; do
        if wait "${e#*:}"; then
            echo "fuzz ${e%%:*}: done"
        else
            echo "fuzz ${e%%:*}: FAILED"
            FAILED+=("fuzz ${e%%:*}")
        fi
        cat "$FUZZ_OUT/${e%%:*}.out" 2>/dev/null
    done
}

if [[ " $STAGES " == *" fuzz "* ]]; then
    FUZZ_OUT=$(mktemp -d)
    stage "clang libFuzzer: build"
    if CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD-fuzz" -DCMAKE_BUILD_TYPE=Release \
        -DVFS_FUZZ=ON >/dev/null; then
        for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
            [ -e "$src" ] || continue
            cmake --build "$BUILD-fuzz" -j"$JOBS" --target "$(basename "$src" .c)" ||
                FAILED+=("fuzz build $(basename "$src" .c)")
        done
        # each target is one process on one CPU for FUZZ_SECONDS: JOBS of them at a time
        running=()
        for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
            [ -e "$src" ] || continue
            name=$(basename "$src" .c)
            bin=$(find "$BUILD-fuzz" -type f -name "$name" -perm -u+x | head -n 1)
            if [ -z "$bin" ]; then
                echo "fuzz: no binary for $name"
                FAILED+=("fuzz $name (not built)")
                continue
            fi
            stage "fuzz $name for ${FUZZ_SECONDS}s (started)"
            fuzz_one "$name" "$bin" &
            running+=("$name:$!")
            if [ ${#running[@]} -ge "$JOBS" ]; then
                fuzz_collect "${running[@]}"
                running=()
            fi
        done
        [ ${#running[@]} -gt 0 ] && fuzz_collect "${running[@]}"
        rm -rf "$FUZZ_OUT"
    else
        FAILED+=("fuzz build")
    fi
fi

echo
echo "==== done in $(($(date +%s) - T0)) s ===="
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "all stages passed"
