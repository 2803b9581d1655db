# test_modes.sh: files keep the mode their writer asked for (umask applied),
# a new store is private (0700), and images fetched by URL are 0600: an
# annotation file holding a token, or a copy of a 0600 file, is not readable
# by other local users (issue 10).
source "$(dirname "$0")/lib.sh"

mode() { stat -c %a "$1"; }

E=$SRC/exp
mkdir -p "$E/images" "$SRC/remote"
$MKIMG "$E/images/a.png" 80 64 1
$MKIMG "$E/images/b.png" 80 64 2
$MKIMG "$SRC/remote/r.png" 80 64 3
chmod 600 "$E/images/a.png"
chmod 640 "$E/images/b.png"
python3 - "$SRC" <<'PY'
import json, sys
src = sys.argv[1]
images = [{"id": 1, "width": 80, "height": 64, "file_name": "images/a.png"},
          {"id": 2, "width": 80, "height": 64, "file_name": "images/b.png"},
          {"id": 3, "width": 80, "height": 64, "file_name": "r.png",
           "absolute_url": f"file://{src}/remote/r.png"}]
anns = [{"id": i, "image_id": i, "category_id": 1 + i % 2} for i in range(1, 4)]
cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
json.dump({"images": images, "annotations": anns, "categories": cats}, open(f"{src}/ann.json", "w"))
PY

vfs_mount
check_eq "a new store is 0700" 700 "$(mode "$STORE")"
check_eq "the mount's root is shown 0755 (allow_other decides who enters)" 755 "$(mode "$MNT")"
mkdir "$MNT/datasets/d"
mkdir "$MNT/datasets/d/images"
cp -p "$E/images/a.png" "$E/images/b.png" "$MNT/datasets/d/images/"
check_eq "cp -p of a 0600 file: 0600 in the mount" 600 "$(mode "$MNT/datasets/d/images/a.png")"
check_eq "and in the store" 600 "$(mode "$STORE/datasets/d/images/a.png")"
check_eq "cp -p of a 0640 file: 0640" 640 "$(mode "$MNT/datasets/d/images/b.png")"
(umask 077 && cp "$SRC/ann.json" "$MNT/datasets/d/ann.json")
check_eq "a new file under umask 077: 0600" 600 "$(mode "$MNT/datasets/d/ann.json")"
check "ready, the fetched image included" wait_status "$MNT/datasets/d/status" "ready: 3 images" 30
check_eq "a fetched image is 0600 in the store" 600 \
    "$(find "$STORE/datasets/d/.vfs-fetched" -type f -name '*r.png' -printf '%m\n')"
cp "$SRC/ann.json" "$MNT/datasets/d/ann.json"
check_eq "overwriting keeps the file's mode" 600 "$(mode "$MNT/datasets/d/ann.json")"
truncate -s 0 "$MNT/datasets/d/images/b.png" 2>/dev/null
check_eq "truncate keeps the file's mode" 640 "$(mode "$STORE/datasets/d/images/b.png")"
(umask 022 && install -m 0644 "$E/images/a.png" "$MNT/datasets/d/images/c.png")
check_eq "install -m 0644: 0644" 644 "$(mode "$MNT/datasets/d/images/c.png")"
vfs_umount

# an existing store open to others is used as it is, with a note
chmod 755 "$STORE"
vfs_mount
check "a note about a store open to others" grep -q "is open to other users (mode 755)" "$T/daemon.log"
check_eq "its mode is left alone" 755 "$(mode "$STORE")"
vfs_umount

vfs_done
