# test_datasets_basic.sh: datasets/ through the mount as a user drives it:
# names (EINVAL, EEXIST), mkdir / mv / rm -r, README, cp -r of images in
# sub-folders plus a COCO file in both orders, status and status.json, the
# close() EINVAL of a bad annotation file with the previous file kept,
# EFBIG for an image over 20 MB, read-only generated files, rmdir of a
# dataset or model while a file in it is being written, and a dataset made
# again under the name of one that went while a write was still open in it.
source "$(dirname "$0")/lib.sh"

vfs_mount

# ---- the tree ----
check "README at the top" grep -q "datasets/" "$MNT/README"
check_err "README is read-only" "denied" sh -c "echo x > '$MNT/README'"
check_eq "top-level folders" "README backbones datasets models" "$(ls "$MNT" | tr '\n' ' ' | sed 's/ $//')"

# ---- backbones/: the installed ones (read-only) merged with the store's ----
DEF_BB=$(backbones_dir)
if [ -d "$DEF_BB" ] && [ -n "$(ls -A "$DEF_BB")" ]; then
    first=$(ls "$DEF_BB" | head -n 1)
    check "installed backbone $first is listed" test -d "$MNT/backbones/$first"
    f=$(ls "$DEF_BB/$first" | head -n 1)
    check "its files read through" cmp "$DEF_BB/$first/$f" "$MNT/backbones/$first/$f"
    check_err "installed backbones are read-only" "denied" sh -c "echo x > '$MNT/backbones/$first/extra.txt'"
fi
mkdir -p "$SRC/mybb"
echo '{"input": [224, 224], "pixels": "0..1", "embedding": "x"}' > "$SRC/mybb/backbone.json"
check "cp -r a folder into backbones/" cp -r "$SRC/mybb" "$MNT/backbones/"
check "it lands in the store" cmp "$SRC/mybb/backbone.json" "$STORE/backbones/mybb/backbone.json"
check "it is listed" test -f "$MNT/backbones/mybb/backbone.json"
check "a broken backbone's status says invalid" wait_status "$MNT/backbones/mybb/status" "invalid: " 20
check "and why (model.json is missing)" grep -q "model.json" "$MNT/backbones/mybb/status"
check "the reason names the folder as the user sees it" grep -q "backbones/mybb" "$MNT/backbones/mybb/status"
check "no store path in it" sh -c "! grep -q -F '$STORE' '$MNT/backbones/mybb/status'"
check_err "backbones/NAME/status is read-only" "denied" sh -c "echo x > '$MNT/backbones/mybb/status'"
# installed = the folder exists: a folder without a loadable model.json must
# fail the status check below, not skip it
if [ -n "$DEF_BB" ] && [ -e "$DEF_BB/centernet" ]; then
    check "the installed centernet ($DEF_BB/centernet/model.json) is ok" wait_status "$MNT/backbones/centernet/status" "ok: centernet, input " 120
    check "its status gives input and embedding" \
        grep -qE "^ok: centernet, input [0-9]+x[0-9]+, embedding [1-9][0-9]*$" "$MNT/backbones/centernet/status"
    check_err "still read-only with its status" "denied" sh -c "echo x > '$MNT/backbones/centernet/extra.txt'"
    check "its files still read through" cmp "$DEF_BB/centernet/model.json" "$MNT/backbones/centernet/model.json"
    check_err "an installed backbone cannot be removed" "denied" rmdir "$MNT/backbones/centernet"
fi
check "rm -r removes it" rm -r "$MNT/backbones/mybb"
check "gone from the store" test ! -e "$STORE/backbones/mybb"

# ---- names ----
check "mkdir registers a dataset" mkdir "$MNT/datasets/pets"
check_eq "new dataset is empty" "empty" "$(cat "$MNT/datasets/pets/status")"
check_eq "status.json of an empty dataset" "empty" "$(jq -r .state "$MNT/datasets/pets/status.json")"
check_err "existing name: EEXIST" "File exists" mkdir "$MNT/datasets/pets"
check_err "space in name: EINVAL" "Invalid argument" mkdir "$MNT/datasets/bad name"
check_err "leading dot: EINVAL" "Invalid argument" mkdir "$MNT/datasets/.hidden"
check_err "65 chars: EINVAL" "Invalid argument" mkdir "$MNT/datasets/$(printf 'a%.0s' $(seq 65))"
check "64 chars are fine" mkdir "$MNT/datasets/$(printf 'b%.0s' $(seq 64))"
check_err "unicode name: EINVAL" "Invalid argument" mkdir "$MNT/datasets/caf$(printf '\xc3\xa9')"
check "dots, dashes, underscores" mkdir "$MNT/datasets/a.b-c_D9"
check_err "mkdir at the top: EPERM" "Operation not permitted" mkdir "$MNT/other"
check "mv renames" mv "$MNT/datasets/a.b-c_D9" "$MNT/datasets/renamed"
check "renamed is there" test -d "$MNT/datasets/renamed"
check "old name is gone" test ! -e "$MNT/datasets/a.b-c_D9"
check_err "mv onto an existing name: EEXIST" "exists" mv -T "$MNT/datasets/renamed" "$MNT/datasets/pets"
check_eq "mv to a bad name: EINVAL" "Invalid argument" "$(rename_err "$MNT/datasets/renamed" "$MNT/datasets/bad name")"
check "rm -r deletes" rm -r "$MNT/datasets/renamed"
check "deleted is gone" test ! -e "$MNT/datasets/renamed"
check "deleted is gone from the store" test ! -e "$STORE/datasets/renamed"
check_err "no files at the datasets top" "" sh -c "echo x > '$MNT/datasets/file.txt'"

# ---- a classification export: images in sub-folders ----
EXP=$SRC/export
mkdir -p "$EXP/images/cats" "$EXP/images/dogs"
list=""
for i in 1 2 3; do
    $MKIMG "$EXP/images/cats/c$i.png" 64 60 "$i"
    $MKIMG "$EXP/images/dogs/d$i.bmp" 72 56 "$((i + 10))"
    list+="$i images/cats/c$i.png 64 60 1"$'\n'
    list+="$((i + 10)) images/dogs/d$i.bmp 72 56 2"$'\n'
done
printf '%s' "$list" | mkcoco "$EXP/annotations.json"

# json first, then the images
mkdir "$MNT/datasets/jfirst"
check "cp the COCO file first" cp "$EXP/annotations.json" "$MNT/datasets/jfirst/"
check "status: incomplete while images are missing" wait_status "$MNT/datasets/jfirst/status" "incomplete: 6 images missing" 10
check "cp -r the images" cp -r "$EXP/images" "$MNT/datasets/jfirst/"
check "status: ready after the images" wait_status "$MNT/datasets/jfirst/status" "ready: 6 images, 3 categories, 0 boxes (classification)" 10

# images first, then the json
mkdir "$MNT/datasets/ifirst"
cp -r "$EXP/images" "$MNT/datasets/ifirst/"
check_eq "images only: still empty" "empty" "$(cat "$MNT/datasets/ifirst/status")"
cp "$EXP/annotations.json" "$MNT/datasets/ifirst/"
check "images first: ready" wait_status "$MNT/datasets/ifirst/status" "ready: 6 images" 10

# images in two copies while the dataset has no annotation file (the second
# lands after the verifier found none: nothing to check it against, so no
# scan), then the file: every image counted
mkdir -p "$MNT/datasets/twice/images"
cp -r "$EXP/images/cats" "$MNT/datasets/twice/images/"
check "two copies: empty after the first" wait_status "$MNT/datasets/twice/status" "empty" 10
sleep 1
cp -r "$EXP/images/dogs" "$MNT/datasets/twice/images/"
sleep 1
check_eq "two copies: still empty" "empty" "$(cat "$MNT/datasets/twice/status")"
cp "$EXP/annotations.json" "$MNT/datasets/twice/"
check "two copies: ready with both" wait_status "$MNT/datasets/twice/status" "ready: 6 images" 10
rm "$MNT/datasets/twice/images/dogs/d1.bmp"
check "two copies: an image removed after" wait_status "$MNT/datasets/twice/status" "incomplete: 1 images missing" 10
cp "$EXP/images/dogs/d1.bmp" "$MNT/datasets/twice/images/dogs/"
check "two copies: and copied again" wait_status "$MNT/datasets/twice/status" "ready: 6 images" 10

# cp -r of the whole folder makes the dataset (cp's own mkdir)
check "cp -r export datasets/NAME" cp -r "$EXP" "$MNT/datasets/whole"
check "cp -r whole: ready" wait_status "$MNT/datasets/whole/status" "ready: 6 images" 10
S=$MNT/datasets/whole/status.json
check_eq "status.json state" "ready" "$(jq -r .state "$S")"
check_eq "status.json images" "6" "$(jq -r .images "$S")"
check_eq "status.json imagesFound" "6" "$(jq -r .imagesFound "$S")"
check_eq "status.json kind" "classification" "$(jq -r .kind "$S")"
check_eq "status.json dataset" "whole" "$(jq -r .dataset "$S")"
check_eq "status.json annotationFile" "annotations.json" "$(jq -r .annotationFile "$S")"
check_eq "status.json no errors" "0" "$(jq -r '.errors | length' "$S")"
check_eq "status size is right" "$(cat "$MNT/datasets/whole/status" | wc -c)" "$(stat -c %s "$MNT/datasets/whole/status")"
check_eq "status.json size is right" "$(cat "$S" | wc -c)" "$(stat -c %s "$S")"
check "cmp of a copied image" cmp "$EXP/images/dogs/d2.bmp" "$MNT/datasets/whole/images/dogs/d2.bmp"

# cp -r export/ into an existing dataset nests it: still found
mkdir "$MNT/datasets/nested"
cp -r "$EXP" "$MNT/datasets/nested"
check "COCO file one folder down" wait_status "$MNT/datasets/nested/status" "ready: 6 images" 10

# ---- generated files are read-only ----
check_err "status is read-only" "denied" sh -c "echo x > '$MNT/datasets/whole/status'"
check_err "status.json is read-only" "denied" cp "$EXP/annotations.json" "$MNT/datasets/whole/status.json"

# ---- close() EINVAL; the previous file stays ----
good=$(md5sum < "$MNT/datasets/whole/annotations.json")
echo "this is not json" > "$SRC/bad.json"
check_err "non-JSON annotation file: cp fails with EINVAL" "Invalid argument" cp "$SRC/bad.json" "$MNT/datasets/whole/annotations.json"
check_eq "previous annotation file intact" "$good" "$(md5sum < "$MNT/datasets/whole/annotations.json")"
check "status.json names the refused write" wait_jq "$S" .lastRefusedWrite.file "annotations.json" 10
check "status.json gives the reason" sh -c "jq -r .lastRefusedWrite.message '$S' | grep -q 'refused: invalid json'"
check_eq "the dataset stays ready (status)" "ready: 6 images" "$(cut -c1-15 "$MNT/datasets/whole/status")"
check_eq "the dataset stays ready (status.json)" "ready" "$(jq -r .state "$S")"
echo '{"images": [], "categories": []}' > "$SRC/noann.json"
check_err "missing annotations array: EINVAL" "Invalid argument" cp "$SRC/noann.json" "$MNT/datasets/whole/annotations.json"
check_eq "previous file still intact" "$good" "$(md5sum < "$MNT/datasets/whole/annotations.json")"
check "status.json names the missing array" wait_jq "$S" ".lastRefusedWrite.message | test(\"annotations' is missing\")" "true" 10
check_err "a new name is refused too" "Invalid argument" cp "$SRC/bad.json" "$MNT/datasets/whole/other.json"
check "and does not appear" test ! -e "$MNT/datasets/whole/other.json"
check "a good write clears the refusal" cp "$EXP/annotations.json" "$MNT/datasets/whole/annotations.json"
check "ready again" wait_status "$MNT/datasets/whole/status" "ready: 6 images" 10

# ---- editors and rsync write a temp file and rename it into place ----
cp "$SRC/bad.json" "$MNT/datasets/whole/annotations.json.tmp"
check_eq "rename of a bad temp over the COCO file: EINVAL" "Invalid argument" \
    "$(rename_err "$MNT/datasets/whole/annotations.json.tmp" "$MNT/datasets/whole/annotations.json")"
check_eq "the COCO file is untouched" "$good" "$(md5sum < "$MNT/datasets/whole/annotations.json")"
check "the temp is still there to fix" test -f "$MNT/datasets/whole/annotations.json.tmp"
rm "$MNT/datasets/whole/annotations.json.tmp"
python3 - "$EXP/annotations.json" "$MNT/datasets/whole" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["images"] = c["images"][:4]
c["annotations"] = [a for a in c["annotations"] if a["image_id"] in {i["id"] for i in c["images"]}]
tmp = os.path.join(sys.argv[2], ".annotations.json.swp")
with open(tmp, "w") as f:
    json.dump(c, f)
os.rename(tmp, os.path.join(sys.argv[2], "annotations.json"))
PY
check "a good temp renamed into place is verified" wait_status "$MNT/datasets/whole/status" "ready: 4 images" 10
cp "$EXP/annotations.json" "$MNT/datasets/whole/annotations.json"
check "back to 6" wait_status "$MNT/datasets/whole/status" "ready: 6 images" 10

# ---- a file being written is visible with its size; readers see it grow ----
python3 - "$MNT/datasets/whole/images/growing.bin" <<'PY'
import os, sys, time
with open(sys.argv[1], "wb") as f:
    f.write(b"x" * 1000)
    f.flush()
    assert os.stat(sys.argv[1]).st_size == 1000, os.stat(sys.argv[1]).st_size
    f.write(b"y" * 1000)
    f.flush()
    time.sleep(1.1)  # attribute cache
    assert os.stat(sys.argv[1]).st_size == 2000
    with open(sys.argv[1], "rb") as r:
        assert r.read() == b"x" * 1000 + b"y" * 1000
with open(sys.argv[1], "ab") as f:
    f.write(b"z" * 10)
assert open(sys.argv[1], "rb").read()[-11:] == b"y" + b"z" * 10
PY
check "stat and read of a file while it is written, then O_APPEND" test $? -eq 0
check_eq "appended size" "2010" "$(stat -c %s "$MNT/datasets/whole/images/growing.bin")"
printf 'new content' > "$SRC/new.bin"
check "cp over an existing file" cp "$SRC/new.bin" "$MNT/datasets/whole/images/growing.bin"
check_eq "it has the new content" "new content" "$(cat "$MNT/datasets/whole/images/growing.bin")"
check_eq "and so has the store" "new content" "$(cat "$STORE/datasets/whole/images/growing.bin")"
rm "$MNT/datasets/whole/images/growing.bin"

# ---- sizes ----
$MKIMG --big "$SRC/big.png" $((21 * 1024 * 1024))
check_err "21 MB image: EFBIG" "File too large" cp "$SRC/big.png" "$MNT/datasets/whole/images/"
check "the big image is not there" test ! -e "$MNT/datasets/whole/images/big.png"
check "no temp left behind" wait_no_temps "$STORE"
# (.vfs-coco-generated is the daemon's own marker that coco.json is its export)
check_eq "nor a hidden file in the dataset's folder" "" \
    "$(find "$STORE/datasets/whole" -name '.*' ! -name .vfs-coco-generated)"
$MKIMG --big "$SRC/ok.png" $((19 * 1024 * 1024))
check "19 MB file is accepted" cp "$SRC/ok.png" "$MNT/datasets/whole/images/"

# ---- rm -r of a full dataset, mv keeps status ----
check "mv a ready dataset" mv "$MNT/datasets/ifirst" "$MNT/datasets/moved"
check "moved dataset re-verified under its new name" wait_jq "$MNT/datasets/moved/status.json" .dataset "moved" 10
check "and still ready" wait_status "$MNT/datasets/moved/status" "ready: 6 images" 10
check "rm -r a full dataset" rm -r "$MNT/datasets/moved"
check "it is gone" test ! -e "$MNT/datasets/moved"
check_err "rmdir of a non-empty dataset: ENOTEMPTY" "not empty" rmdir "$MNT/datasets/jfirst"

# ---- unlink of a file still open for writing (POSIX: the name goes, the fd works) ----
check_eq "unlink while open for writing" "ok" "$(python3 - "$MNT/datasets/jfirst/images/open.png" "$SRC/ok.png" <<'PY'
import os, sys
path, src = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, data[:1000])
try:
    os.unlink(path)
except OSError as e:
    print("unlink:", e.strerror); sys.exit()
if os.path.exists(path):
    print("still listed after unlink"); sys.exit()
# (fstat here still fails with ESTALE: the kernel asks libfuse for the
# attributes without the file handle, and the name is gone)
os.write(fd, data[1000:])
try:
    os.close(fd)
except OSError as e:
    print("close:", e.strerror); sys.exit()
print("ok" if not os.path.exists(path) else "back after close")
PY
)"
check "nothing of it in the store" test ! -e "$STORE/datasets/jfirst/images/open.png"

# ---- rmdir of a dataset whose only file is still being written: ENOTEMPTY,
# as a plain folder answers (the file is listed), and the write completes ----
mkdir "$MNT/datasets/pend"
check_eq "rmdir of a dataset under a write" "refused: Directory not empty; close ok; listed" \
    "$(python3 - "$MNT/datasets/pend" "$SRC/ok.png" <<'PY'
import os, sys
ds, src = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
fd = os.open(os.path.join(ds, "open.png"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, data[:1000])
try:
    os.rmdir(ds)
    out = "removed"
except OSError as e:
    out = "refused: " + e.strerror
os.write(fd, data[1000:])
try:
    os.close(fd)
    out += "; close ok"
except OSError as e:
    out += "; close: " + e.strerror
out += "; listed" if os.path.exists(os.path.join(ds, "open.png")) else "; gone"
print(out)
PY
)"
check "and then rm -r removes it" rm -r "$MNT/datasets/pend"
# a model's folder too (the check is the core's, made before the area's own):
# a train.json still being written keeps it; this one is refused at close
mkdir "$MNT/models/pend"
check_eq "rmdir of a model under a write" "refused: Directory not empty; close: Invalid argument; kept" \
    "$(python3 - "$MNT/models/pend" <<'PY'
import os, sys
m = sys.argv[1]
fd = os.open(os.path.join(m, "train.json"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"{")
try:
    os.rmdir(m)
    out = "removed"
except OSError as e:
    out = "refused: " + e.strerror
os.write(fd, b"not json")
try:
    os.close(fd)
    out += "; close ok"
except OSError as e:
    out += "; close: " + e.strerror
out += "; kept" if os.path.isdir(m) else "; gone"
print(out)
PY
)"
check "and then rmdir removes it" rmdir "$MNT/models/pend"

# ---- the close of a file whose dataset has gone meanwhile (mv of the
# dataset, or rm -r, while a broken annotation file was still open in it)
# leaves nothing of the old dataset: a new one of the same name starts
# empty, not "invalid" with the old one's refused write ----
mkdir "$MNT/datasets/late"
check_eq "close after the dataset moved away" "close: Invalid argument" \
    "$(python3 - "$MNT/datasets" <<'PY'
import os, sys
d = sys.argv[1]
fd = os.open(os.path.join(d, "late", "ann.json"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"not json")
os.rename(os.path.join(d, "late"), os.path.join(d, "late2"))
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close: " + e.strerror)
PY
)"
check "a new dataset of the old name" mkdir "$MNT/datasets/late"
cp "$SRC/ok.png" "$MNT/datasets/late/"
sleep 1.5 # the verifier's run after the image (0.5 s debounce)
check_eq "starts empty" "empty" "$(cat "$MNT/datasets/late/status")"
check_eq "with no refused write of the old one" "null" \
    "$(jq -c .lastRefusedWrite "$MNT/datasets/late/status.json")"
check "both go" rm -r "$MNT/datasets/late" "$MNT/datasets/late2"

vfs_umount
vfs_done
