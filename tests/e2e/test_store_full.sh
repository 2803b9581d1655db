# test_store_full.sh: a store whose disk fills up during training. The model
# fails with storeFull and a message saying what to do (never a status stuck
# at "training"), the daemon stays up, and after space is freed writing
# train.json again succeeds (issue 10). The store is a small tmpfs.
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0 centernet
mkdir -p "$STORE"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=24m,mode=700 vfs-e2e-store "$STORE"; then
    echo "skipped: needs root to mount a small tmpfs"
    exit 77
fi
# the daemon lets go of the store before the tmpfs goes
trap 'fusermount3 -u "$MNT" 2>/dev/null; [ -z "$VFS_PID" ] || wait "$VFS_PID" 2>/dev/null
      VFS_PID=; umount "$STORE" 2>/dev/null; vfs_cleanup' EXIT

$MK cls "$SRC/d" 6 21

vfs_mount
mkdir "$MNT/datasets/d"
cp -r "$SRC/d/." "$MNT/datasets/d/"
check "dataset ready" wait_status "$MNT/datasets/d/status" ready 60
mkdir "$MNT/models/m"
# the daemon writes each backbone's status file once at start: let those land
# before the disk fills, so that what is left below is known
for b in "$MNT"/backbones/*/; do
    for _ in $(seq 600); do [ -s "$b/status" ] && break; sleep 0.1; done
    check "backbones/$(basename "$b")/status written" test -s "$b/status"
done

# fill the disk, then give back 16 KB: enough for train.json, not for a model
# (the model's two files take 28 KB)
dd if=/dev/zero of="$STORE/filler" bs=4k 2>/dev/null || true
truncate -s -16K "$STORE/filler"
# an annotation file that does not fit: cp says so, nothing is damaged
python3 -c 'import sys; sys.stdout.write(open(sys.argv[1]).read() + " " * 200000)' \
    "$SRC/d/annotations.json" >"$SRC/big.json"
check_err "a COCO file too big for the disk: No space left on device" "No space left on device" \
    cp "$SRC/big.json" "$MNT/datasets/d/annotations.json"
check "the annotation file in use is unchanged" cmp -s "$SRC/d/annotations.json" \
    "$MNT/datasets/d/annotations.json"
check "the dataset stays ready" wait_status "$MNT/datasets/d/status" ready 10
check "status.json says the write was refused for the full disk" wait_jq "$MNT/datasets/d/status.json" \
    '.lastRefusedWrite.message | contains("No space left on device")' true 10
echo '{"dataset": "d", "budget_minutes": 2}' >"$MNT/models/m/train.json"
check "the model fails with storeFull" wait_status "$MNT/models/m/status" "failed: storeFull" 300
check "the message says what to do" grep -q "free space there, then write train.json again" \
    "$MNT/models/m/status"
check_eq "status.json agrees" "storeFull" "$(jq -r ".errors[0].code" "$MNT/models/m/status.json")"
check "the log says the cache was removed for room" grep -q "removed the feature cache" \
    "$MNT/models/m/log"
check "the daemon is still up" test -f "$MNT/README"

rm -f "$STORE/filler"
echo '{"dataset": "d", "budget_minutes": 2}' >"$MNT/models/m/train.json"
check "after freeing space, training again succeeds" wait_status "$MNT/models/m/status" succeeded 300
check "the model file is there" test -s "$STORE/models/m/model.safetensors"
check "the reserve is back" test -s "$STORE/.reserve"

# predict/ on a full disk: room for the image, none for its result
$MK one "$SRC/one.png" disc 5
pages=$((($(stat -c %s "$SRC/one.png") + 4095) / 4096))
dd if=/dev/zero of="$STORE/filler" bs=4k 2>/dev/null || true
truncate -s "-$((pages * 4))K" "$STORE/filler"
check "the image fits" cp "$SRC/one.png" "$MNT/models/m/predict/one.png"
check_eq "its result says the disk is full" "StoreFull" \
    "$(jq -r .error.code "$MNT/models/m/predict/one.png.json")"
rm -f "$STORE/filler"
cp "$SRC/one.png" "$MNT/models/m/predict/two.png"
check_eq "with room again, predict answers" "disc" \
    "$(jq -r '.customModelResult.tagsResult.values[0].name' "$MNT/models/m/predict/two.png.json")"
vfs_umount

vfs_done
