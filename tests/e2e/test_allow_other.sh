# test_allow_other.sh: with -o allow_other another local user can look but
# not change: visionfs adds default_permissions, so the kernel checks the
# caller against the files' owners and modes (issue 10). Run as root; the
# other user is nobody.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1 || ! command -v runuser >/dev/null; then
    echo "skipped: needs root, the user nobody and runuser"
    exit 77
fi
chmod 755 "$T" # nobody must reach the mount point

E=$SRC/exp
mkdir -p "$E/images"
$MKIMG "$E/images/a.png" 80 64 1
$MKIMG "$E/images/b.png" 80 64 2
printf '1 images/a.png 80 64 1\n2 images/b.png 80 64 2\n' | mkcoco "$E/ann.json"

vfs_mount -o allow_other
check "the daemon says it added default_permissions" \
    grep -q "adding default_permissions" "$T/daemon.log"
check "the mount options carry default_permissions" \
    grep -q "default_permissions" <(findmnt -no OPTIONS "$MNT")
mkdir "$MNT/datasets/d"
cp -r "$E/." "$MNT/datasets/d/"
check "ready as root" wait_status "$MNT/datasets/d/status" "ready: 2 images" 10

as_nobody() { runuser -u nobody -- "$@"; }
check "nobody can list the datasets" as_nobody ls "$MNT/datasets/d/images"
check "nobody can read status" as_nobody cat "$MNT/datasets/d/status"
check_err "nobody cannot remove a dataset" "Permission denied" as_nobody rm -r "$MNT/datasets/d"
check_err "nobody cannot remove an image" "Permission denied" as_nobody rm "$MNT/datasets/d/images/a.png"
check_err "nobody cannot add an image" "Permission denied" \
    as_nobody cp "$E/images/a.png" "$MNT/datasets/d/images/c.png"
check_err "nobody cannot make a dataset" "Permission denied" as_nobody mkdir "$MNT/datasets/x"
check_err "nobody cannot make a model" "Permission denied" as_nobody mkdir "$MNT/models/x"
check_err "nobody cannot overwrite the annotations" "Permission denied" \
    as_nobody sh -c "echo '{}' > '$MNT/datasets/d/ann.json'"
check "everything is still there" test -f "$MNT/datasets/d/images/a.png"
check "still ready" wait_status "$MNT/datasets/d/status" "ready: 2 images" 5

# a folder root opens to others: what nobody writes stays nobody's, and the
# file:// urls in nobody's annotation file are read with nobody's rights
mkdir "$MNT/datasets/open"
chmod 777 "$MNT/datasets/open"
SECRET=$T/secret
mkdir -p "$SECRET/root" "$SECRET/pub"
chmod 755 "$SECRET"
chmod 700 "$SECRET/root"
chmod 755 "$SECRET/pub"
cp "$E/images/a.png" "$SECRET/root/a.png"
cp "$E/images/b.png" "$SECRET/pub/b.png"
chmod 644 "$SECRET/root/a.png" "$SECRET/pub/b.png"
python3 - "$SECRET" >"$T/fileurls.json" <<'EOF2'
import json, sys
d = sys.argv[1]
json.dump({"images": [
    {"id": 1, "file_name": "a.png", "width": 80, "height": 64, "absolute_url": "file://" + d + "/root/a.png"},
    {"id": 2, "file_name": "b.png", "width": 80, "height": 64, "absolute_url": "file://" + d + "/pub/b.png"}],
  "annotations": [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 2, "category_id": 2}],
  "categories": [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]}, sys.stdout)
EOF2
chmod 644 "$T/fileurls.json"
check "nobody may write into the opened folder" \
    as_nobody cp "$T/fileurls.json" "$MNT/datasets/open/ann.json"
check_eq "the file is nobody's" "nobody" "$(stat -c %U "$MNT/datasets/open/ann.json")"
check "the image nobody may read is fetched, the other is not" \
    wait_jq "$MNT/datasets/open/status.json" \
    '[.errors[] | select(.message | test("not readable by the user who wrote"))] | length' 1 30
check "the readable one is in place" \
    bash -c "ls '$STORE/datasets/open/.vfs-fetched/' | grep -q 'b.png'"
check "the root-only one is not" \
    bash -c "! ls '$STORE/datasets/open/.vfs-fetched/' | grep -q 'a.png'"
vfs_umount

# given together with default_permissions: taken as is, no note
vfs_mount -o allow_other,default_permissions
check_eq "no note when default_permissions is already given" 1 \
    "$(grep -c "adding default_permissions" "$T/daemon.log")"
check_err "still refused for nobody" "Permission denied" as_nobody mkdir "$MNT/datasets/y"
vfs_umount

vfs_done
