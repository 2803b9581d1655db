# lib.sh: shared helpers for the end-to-end tests (sourced, not run).
#
# Each test script is called as `bash test_X.sh path/to/visionfs`. It runs
# under `timeout` (re-executing itself once), mounts visionfs in a fresh
# temp dir with a fresh store, and always unmounts and cleans up in a trap.
# Checks count passes and failures; the script ends with `vfs_done`, which
# prints "N passed, N failed" and exits non-zero on any failure.

if [ -z "${VFS_E2E_TIMED:-}" ]; then
    export VFS_E2E_TIMED=1
    exec timeout -k 10 "${VFS_E2E_TIMEOUT:-600}" bash "$0" "$@"
fi
set -euo pipefail

VFS_BIN=$(readlink -f "${1:?usage: $0 path/to/visionfs}")
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MKIMG="python3 $E2E_DIR/mkimg.py"

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
    echo "skipped: no /dev/fuse or fusermount3"
    exit 77
fi
for tool in jq python3; do
    command -v "$tool" >/dev/null || { echo "skipped: $tool missing"; exit 77; }
done
[ -x "$VFS_BIN" ] || { echo "no visionfs binary at $VFS_BIN"; exit 1; }

T=$(mktemp -d /tmp/vfs-e2e.XXXXXX)
MNT=$T/mnt
STORE=$T/store
SRC=$T/src
mkdir -p "$MNT" "$SRC"
VFS_PID=
PASS=0
FAIL=0

vfs_cleanup() {
    set +e
    if mountpoint -q "$MNT" 2>/dev/null || ! stat "$MNT" >/dev/null 2>&1; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
    fi
    if [ -n "$VFS_PID" ]; then
        kill "$VFS_PID" 2>/dev/null
        wait "$VFS_PID" 2>/dev/null
    fi
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
    if [ "$FAIL" -gt 0 ] && [ -f "$T/daemon.log" ]; then
        echo "---- daemon log (last 40 lines) ----"
        tail -n 40 "$T/daemon.log"
    fi
    rm -rf "$T"
}
trap vfs_cleanup EXIT

# A test still running after VFS_WATCHDOG_SECS (default: a minute before the
# script's own limit, VFS_E2E_TIMEOUT) prints where every thread of its
# daemons is blocked in the kernel (/proc/PID/task/*/stack, root only), their
# user stacks (gdb) and the daemon log's tail, so a hang leaves evidence in
# the test's output before the kill. The sleep gets no stdout or stderr:
# killed at cleanup, it cannot hold ctest's pipe.
vfs_watchdog_dump() {
    set +e
    local p t
    echo "==== watchdog: still running after $WATCHDOG_SECS s ===="
    for p in $(pgrep -f -- "--store $STORE"); do
        echo "-- process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
        for t in /proc/"$p"/task/*; do
            echo "-- thread ${t##*/} $(cat "$t/comm" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"
            cat "$t/stack" 2>/dev/null
        done
        command -v gdb >/dev/null &&
            timeout 60 gdb -batch -p "$p" -ex 'thread apply all bt' </dev/null 2>&1 | grep -E '^(Thread|#)'
    done
    echo "---- daemon log (last 60 lines) ----"
    tail -n 60 "$T/daemon.log" 2>/dev/null
}
WATCHDOG_SECS=${VFS_WATCHDOG_SECS:-$((${VFS_E2E_TIMEOUT:-600} - 60))}
(
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$WATCHDOG_SECS" </dev/null >/dev/null 2>&1 &
    s=$!
    wait "$s" && vfs_watchdog_dump
) &
WATCHDOG_PID=$!

# vfs_mount [extra args]: mount in the foreground (background job), wait for it.
# A stale mount left by kill -9 can still answer stat from the kernel's
# attribute cache for a second, so wait for the daemon's own "mounted" line.
vfs_mount() {
    local before now
    touch "$T/daemon.log"
    before=$(grep -c ': mounted "' "$T/daemon.log" || true)
    "$VFS_BIN" --store "$STORE" -f "$@" "$MNT" >>"$T/daemon.log" 2>&1 &
    VFS_PID=$!
    local i
    for i in $(seq 100); do
        now=$(grep -c ': mounted "' "$T/daemon.log" || true)
        if [ "${now:-0}" -gt "${before:-0}" ] &&
            mountpoint -q "$MNT" && [ -f "$MNT/README" ]; then
            return 0
        fi
        if ! kill -0 "$VFS_PID" 2>/dev/null; then
            echo "visionfs exited:"; cat "$T/daemon.log"; return 1
        fi
        sleep 0.1
    done
    echo "mount did not appear in 10 s"; return 1
}

# vfs_umount: fusermount3 -u and wait for the daemon to exit.
vfs_umount() {
    fusermount3 -u "$MNT"
    wait "$VFS_PID"
    VFS_PID=
}

# vfs_kill9: the daemon dies; the stale mount point stays behind.
vfs_kill9() {
    kill -9 "$VFS_PID"
    wait "$VFS_PID" 2>/dev/null || true
    VFS_PID=
}

ok() {
    PASS=$((PASS + 1))
    echo "ok: $*"
}

bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL: $*"
}

# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then ok "$1"; else bad "$1: expected [$2], got [$3]"; fi
}

# check_err DESCRIPTION ERRTEXT COMMAND...: the command must fail and say ERRTEXT
# (e.g. "Invalid argument" for EINVAL).
check_err() {
    local what=$1 text=$2
    shift 2
    local out
    if out=$("$@" 2>&1); then
        bad "$what: succeeded, expected \"$text\""
    elif [[ "$out" == *"$text"* ]]; then
        ok "$what"
    else
        bad "$what: expected \"$text\", got: $out"
    fi
}

# wait_status FILE PREFIX [SECONDS]: until FILE's first line starts with PREFIX.
wait_status() {
    local f=$1 want=$2 secs=${3:-30} s=""
    local n=$((secs * 10))
    while [ $n -gt 0 ]; do
        s=$(head -n 1 "$f" 2>/dev/null || true)
        if [[ "$s" == "$want"* ]]; then
            return 0
        fi
        sleep 0.1
        n=$((n - 1))
    done
    echo "timeout waiting for \"$want\" in $f; last: $s"
    return 1
}

# wait_jq FILE FILTER EXPECTED [SECONDS]: until `jq -r FILTER FILE` prints EXPECTED.
wait_jq() {
    local f=$1 filter=$2 want=$3 secs=${4:-30} got=""
    local n=$((secs * 10))
    while [ $n -gt 0 ]; do
        got=$(jq -r "$filter" "$f" 2>/dev/null || true)
        [ "$got" == "$want" ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    echo "timeout waiting for $filter == \"$want\" in $f; last: $got"
    return 1
}

# wait_no_temps STORE [SECONDS]: until STORE/.tmp is empty (or missing). The daemon's own
# atomic writes (status.json, a dataset's export) pass through it for a moment while the
# dataset verifier runs, so "nothing left behind" means empty within a few seconds.
wait_no_temps() {
    local d=$1/.tmp secs=${2:-5} left=""
    local n=$((secs * 10))
    while [ $n -gt 0 ]; do
        left=$(ls -A "$d" 2>/dev/null || true)
        [ -z "$left" ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    echo "still in $d after ${secs} s: $left"
    return 1
}

# mkcoco OUT < list: a COCO file for "id file_name w h category [x y w h]" lines.
mkcoco() {
    python3 "$E2E_DIR/mkcoco.py" "$@"
}

# rename_err FROM TO: prints the strerror of rename(2), or "ok" (mv rewords EINVAL).
rename_err() {
    python3 -c 'import os, sys
try:
    os.rename(sys.argv[1], sys.argv[2]); print("ok")
except OSError as e:
    print(e.strerror)' "$1" "$2"
}

# jqe ARGS...: jq -e, quiet (for check).
jqe() {
    jq -e "$@" >/dev/null
}

# MK: the labelled-image maker of the models/ tests.
MK="python3 $E2E_DIR/test_models_mkdata.py"

# backbones_dir: prints the folder of the installed backbones, by the
# daemon's rule (fs/backbones.c; tests/unit/test_backbone_dir.h for the C
# tests): $VISIONFS_BACKBONES, else $XDG_DATA_HOME/visionfs/backbones, else
# $HOME/.local/share/visionfs/backbones; an empty variable counts as unset.
# Prints nothing when none of them is set.
backbones_dir() {
    if [ -n "${VISIONFS_BACKBONES:-}" ]; then
        echo "$VISIONFS_BACKBONES"
    elif [ -n "${XDG_DATA_HOME:-}" ]; then
        echo "$XDG_DATA_HOME/visionfs/backbones"
    elif [ -n "${HOME:-}" ]; then
        echo "$HOME/.local/share/visionfs/backbones"
    fi
}

# need_backbone NAME...: skips the test (exit 77) when none of the named
# backbones is installed (nothing at $(backbones_dir)/NAME). Fails (exit 1)
# when one is installed but its model.json is missing, unreadable or not a
# JSON object: skipping there would hide a broken install.
need_backbone() {
    local dir b found=0
    dir=$(backbones_dir)
    for b in "$@"; do
        [ -n "$dir" ] && { [ -e "$dir/$b" ] || [ -L "$dir/$b" ]; } || continue
        # jq 1.6 -e exits 0 on an empty file, so compare what it prints
        if [ "$(jq -r type "$dir/$b/model.json" 2>/dev/null)" != object ]; then
            echo "FAIL: backbone $b is installed but $dir/$b/model.json is missing, unreadable or not JSON"
            exit 1
        fi
        found=1
    done
    [ "$found" -eq 1 ] && return 0
    echo "skipped: no backbone of [$*] installed in ${dir:-(no folder)} (scripts/fetch-backbones.sh)"
    exit 77
}

vfs_done() {
    echo "$PASS passed, $FAIL failed"
    # the EXIT traps that run next clean up (kill, wait, unmount): a failing
    # cleanup step must not turn a passed test into a failed one
    set +e
    [ "$FAIL" -eq 0 ]
}
