# test_datasets_crash.sh: nothing is lost. Unmount with fusermount3 -u,
# SIGTERM and SIGINT, kill -9 (leaving a stale mount point) and mount again
# on it: datasets, files and status are all back; a write in flight when the
# daemon died never shows up half-written.
source "$(dirname "$0")/lib.sh"

E=$SRC/exp
mkdir -p "$E/images"
list=""
for i in 1 2 3 4; do
    $MKIMG "$E/images/p$i.png" 80 64 "$i"
    list+="$i images/p$i.png 80 64 $(((i % 2) + 1))"$'\n'
done
printf '%s' "$list" | mkcoco "$E/ann.json"

vfs_mount
mkdir "$MNT/datasets/keep"
cp -r "$E/." "$MNT/datasets/keep/"
check "ready before the crash" wait_status "$MNT/datasets/keep/status" "ready: 4 images" 10
mkdir "$MNT/datasets/half"
cp "$E/ann.json" "$MNT/datasets/half/"
check "incomplete before the crash" wait_status "$MNT/datasets/half/status" "incomplete: 4 images missing" 10
mkdir "$MNT/models/m1"
sum_before=$(cd "$MNT/datasets/keep" && md5sum ann.json images/*.png)

# a writer that is mid-file when the daemon dies
python3 - "$MNT/datasets/keep/images/inflight.png" <<'EOF' &
import sys, time
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG partial")
    f.flush()
    time.sleep(30)
EOF
WRITER=$!
DEAD_PID=$VFS_PID
# the writer is mid-file once the daemon holds its file: one without a name
# (O_TMPFILE) in the folder where it will live, shown in /proc as
# "FOLDER/#INODE (deleted)", or a temp in STORE/.tmp where the file system
# has no O_TMPFILE (python may take a while to start on a busy machine)
check "the in-flight write has an unnamed file or a temp in the store before the crash" \
    bash -c "for i in \$(seq 100); do
        ls -l /proc/$DEAD_PID/fd 2>/dev/null | grep -q '$STORE/datasets/keep/images/#[0-9]* (deleted)' && exit 0
        ls '$STORE/.tmp' | grep -Eq '^[a-z]$DEAD_PID[.]' && exit 0; sleep 0.1; done; exit 1"

vfs_kill9
kill "$WRITER" 2>/dev/null || true
wait "$WRITER" 2>/dev/null || true
check "the mount point is stale after kill -9" bash -c "! stat '$MNT' >/dev/null 2>&1"

vfs_mount
check "mount again on the stale mount point" mountpoint -q "$MNT"
check "datasets are back" test -d "$MNT/datasets/keep" -a -d "$MNT/datasets/half"
check "models are back" test -d "$MNT/models/m1"
check_eq "files are back, same content" "$sum_before" "$(cd "$MNT/datasets/keep" && md5sum ann.json images/*.png)"
check "the half-written file did not survive" test ! -e "$MNT/datasets/keep/images/inflight.png"
check_eq "nothing of it is left in the store's folder either" "" \
    "$(ls -A "$STORE/datasets/keep/images" | grep -v '[.]png$' || true)"
# temps carry the pid of the daemon that made them: the new daemon's own
# status writes pass through .tmp at any moment, the dead one's must be gone
check "no temp of the dead daemon left in the store" \
    bash -c "! ls '$STORE/.tmp' | grep -Eq '^[a-z]$DEAD_PID[.]'"
check "status is back: ready" wait_status "$MNT/datasets/keep/status" "ready: 4 images" 10
check "status is back: incomplete" wait_status "$MNT/datasets/half/status" "incomplete: 4 images missing" 10
check_eq "status.json is back" "ready" "$(jq -r .state "$MNT/datasets/keep/status.json")"

# work after the remount, then a clean unmount by SIGTERM
cp -r "$E/images" "$MNT/datasets/half/"
check "verification works after remount" wait_status "$MNT/datasets/half/status" "ready: 4 images" 10
kill -TERM "$VFS_PID"
rc=0
wait "$VFS_PID" || rc=$?
VFS_PID=
check_eq "SIGTERM: daemon exits 0" "0" "$rc"
check "SIGTERM: unmounted" bash -c "! mountpoint -q '$MNT'"

# SIGINT
vfs_mount
check_eq "after SIGTERM: still ready" "ready" "$(jq -r .state "$MNT/datasets/half/status.json")"
kill -INT "$VFS_PID"
rc=0
wait "$VFS_PID" || rc=$?
VFS_PID=
check_eq "SIGINT: daemon exits 0" "0" "$rc"
check "SIGINT: unmounted" bash -c "! mountpoint -q '$MNT'"

# fusermount3 -u, and the daemonized (background) mode
"$VFS_BIN" --store "$STORE" "$MNT"
check "daemonized mount" mountpoint -q "$MNT"
check "daemonized: datasets there" test -d "$MNT/datasets/keep"
mkdir -p "$T/mnt2"
check_err "a second daemon on the same store is refused" "in use by another visionfs" \
    "$VFS_BIN" --store "$STORE" -f "$T/mnt2"
check "the first mount is unharmed" test -f "$MNT/datasets/keep/status"
check_err "a second daemon over the live mount point is refused" "already a mount point" \
    timeout 10 "$VFS_BIN" --store "$T/store2" -f "$MNT"
check "the first mount still answers" test -f "$MNT/datasets/keep/status"
check "and was not hidden: its datasets are there" test -d "$MNT/datasets/keep"
check "fusermount3 -u" fusermount3 -u "$MNT"
sleep 0.5
check "unmounted" bash -c "! mountpoint -q '$MNT'"

# the store refuses to live inside the mount point
check_err "store inside the mount point is refused" "must not be inside" "$VFS_BIN" --store "$MNT/store" -f "$MNT"

vfs_done
