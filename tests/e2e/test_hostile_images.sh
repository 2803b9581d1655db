# test_hostile_images.sh: decompression bombs through the mount (issue 10):
# PNG, JPEG, WebP, TIFF and GIF files of a few hundred bytes whose headers
# declare 60000 x 60000 pixels, in a dataset and in predict/. Each is
# refused with a message naming the file, the daemon keeps answering, and
# its memory stays far below what the headers ask for.
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0 centernet
python3 "$E2E_DIR/mkbombs.py" "$SRC/bombs"
$MK cls "$SRC/d" 4 31
$MK one "$SRC/one.png" disc 5
BOMBS="bomb.png bomb.jpg bomb.webp bomb.tif bomb.gif"

vfs_mount
PID=$VFS_PID

# in a dataset: the COCO file says 100 x 100, the files say 60000 x 60000
mkdir -p "$MNT/datasets/b/images"
for f in $BOMBS; do cp "$SRC/bombs/$f" "$MNT/datasets/b/images/"; done
python3 - "$MNT/datasets/b/ann.json" $BOMBS <<'PY'
import json, sys
names = sys.argv[2:]
images = [{"id": i + 1, "width": 100, "height": 100, "file_name": "images/" + n} for i, n in enumerate(names)]
anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1} for i in range(len(names))]
json.dump({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]},
          open(sys.argv[1], "w"))
PY
check "the dataset settles" wait_jq "$MNT/datasets/b/status.json" '.state != "verifying"' true 60
for f in $BOMBS; do
    check "dataset: $f is named as a problem" jqe --arg f "images/$f" \
        '[.. | strings | select(contains($f))] | length > 0' "$MNT/datasets/b/status.json"
done
check_eq "dataset: invalid, every image bad" "invalid 5" \
    "$(jq -r '"\(.state) \(.imagesBad)"' "$MNT/datasets/b/status.json")"

# in predict/ of a trained model
mkdir "$MNT/datasets/d"
cp -r "$SRC/d/." "$MNT/datasets/d/"
check "training set ready" wait_status "$MNT/datasets/d/status" ready 60
mkdir "$MNT/models/m"
echo '{"dataset": "d", "budget_minutes": 2}' >"$MNT/models/m/train.json"
check "model trained" wait_status "$MNT/models/m/status" succeeded 300
for f in $BOMBS; do
    cp "$SRC/bombs/$f" "$MNT/models/m/predict/$f"
    code=$(jq -r '.error.code // "none"' "$MNT/models/m/predict/$f.json")
    check "predict: $f answered with an error ($code)" test "$code" != none
done
cp "$SRC/one.png" "$MNT/models/m/predict/one.png"
check_eq "predict still works" "disc" \
    "$(jq -r '.customModelResult.tagsResult.values[0].name' "$MNT/models/m/predict/one.png.json")"
peak=$(($(awk '$1 == "VmHWM:" {print $2}' "/proc/$PID/status") / 1024))
echo "daemon peak RSS: $peak MB"
check "the daemon's peak memory stays under 2 GB ($peak MB)" test "$peak" -lt 2048
vfs_umount
vfs_done
