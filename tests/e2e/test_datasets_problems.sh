# test_datasets_problems.sh: what the verification reports, through the
# mount: unsafe file names never read outside the dataset, truncated and
# non-image files are reported by name, a declared size that does not match,
# missing images (incomplete), relative vs pixel boxes, every problem listed
# with its code, JSON path and id.
source "$(dirname "$0")/lib.sh"

vfs_mount

D=$SRC/det
mkdir -p "$D/images"
for i in 1 2 3 4 5; do $MKIMG "$D/images/i$i.png" 100 80 "$i"; done

# ---- relative boxes, all good ----
printf '%s\n' \
    "1 images/i1.png 100 80 1 0.1 0.1 0.5 0.5" \
    "2 images/i2.png 100 80 1 0.2 0.2 0.3 0.3" \
    "3 images/i3.png 100 80 2 0.1 0.3 0.2 0.2" \
    "4 images/i4.png 100 80 2 0.5 0.5 0.4 0.4" | mkcoco "$D/ann.json"
cp -r "$D" "$MNT/datasets/rel"
check "relative boxes: ready" wait_status "$MNT/datasets/rel/status" "ready: 4 images, 3 categories, 4 boxes (detection)" 10
check_eq "relative boxes are reported as relative" "relative" "$(jq -r .boxUnits "$MNT/datasets/rel/status.json")"

# ---- pixel boxes ----
printf '%s\n' \
    "1 images/i1.png 100 80 1 10 8 50 40" \
    "2 images/i2.png 100 80 1 20 16 30 24" \
    "3 images/i3.png 100 80 2 10 24 20 16" \
    "4 images/i4.png 100 80 2 50 40 40 32" | mkcoco "$D/ann.json"
cp -r "$D" "$MNT/datasets/pix"
check "pixel boxes: ready" wait_status "$MNT/datasets/pix/status" "ready: 4 images, 3 categories, 4 boxes (detection)" 10
check_eq "pixel boxes are reported as pixels" "pixels" "$(jq -r .boxUnits "$MNT/datasets/pix/status.json")"

# ---- a box overshooting by a pixel: clipped, a warning ----
printf '%s\n' \
    "1 images/i1.png 100 80 1 10 8 91 40" \
    "2 images/i2.png 100 80 1 20 16 30 24" | mkcoco "$D/ann.json"
rm -rf "$MNT/datasets/pix"
cp -r "$D" "$MNT/datasets/pix"
check "overshoot by one pixel: still ready" wait_status "$MNT/datasets/pix/status" "ready: 2 images" 10
check "overshoot: a warning at annotations[0].bbox" \
    jqe '.warnings | map(select(.path | startswith("annotations[0].bbox"))) | length >= 1' "$MNT/datasets/pix/status.json"

# ---- many problems at once ----
P=$SRC/bad
mkdir -p "$P/images"
for i in 1 2 3; do $MKIMG "$P/images/i$i.png" 100 80 "$i"; done
$MKIMG "$SRC/whole.png" 100 80 9
head -c 3000 "$SRC/whole.png" > "$P/images/trunc.png"
echo "just some text" > "$P/images/notes.png"
printf '%s\n' \
    "1 images/i1.png 100 80 1 0.1 0.1 0.5 0.5" \
    "2 ../../etc/passwd 100 80 1 0.1 0.1 0.5 0.5" \
    "3 /etc/hostname 100 80 2 0.1 0.1 0.2 0.2" \
    "4 images/trunc.png 100 80 2 0.1 0.1 0.2 0.2" \
    "5 images/i2.png 90 80 2 0.1 0.1 0.2 0.2" \
    "6 images/notes.png 100 80 2 0.1 0.1 0.2 0.2" \
    "7 images/i3.png 100 80 2 0.1 0.1 0.2 0.2" | mkcoco "$P/ann.json"
# images first, then the COCO file: the report is final once it says invalid
mkdir "$MNT/datasets/bad"
cp -r "$P/images" "$MNT/datasets/bad/"
cp "$P/ann.json" "$MNT/datasets/bad/"
check "several problems: invalid" wait_status "$MNT/datasets/bad/status" "invalid: " 10
S=$MNT/datasets/bad/status.json
err() { jq -r --arg p "$1" '.errors[] | select(.path | startswith($p)) | "\(.code) \(.id)"' "$S" | head -n 1; }
check_eq "../../etc/passwd: an error at images[1].file_name" "datasetAnnotationsInvalid 2" "$(err 'images[1].file_name')"
check_eq "absolute path: an error at images[2].file_name" "datasetAnnotationsInvalid 3" "$(err 'images[2].file_name')"
check_eq "truncated image: datasetCorrupt at images[3]" "datasetCorrupt 4" "$(err 'images[3]')"
check "truncated image named in the message" \
    jqe '.errors[] | select(.id == 4) | .message | test("trunc.png") and test("truncated")' "$S"
check "no store path leaks into messages" bash -c "! grep -q '$STORE' '$S'"
check_eq "declared size mismatch: images[4]" "datasetAnnotationsInvalid 5" "$(err 'images[4].width')"
check_eq "not an image: datasetCorrupt at images[5]" "datasetCorrupt 6" "$(err 'images[5]')"
check "not an image named in the message" jqe '.errors[] | select(.id == 6) | .message | test("notes.png")' "$S"
check "every error has a hint" jqe '[.errors[] | .hint | length > 0] | all' "$S"
check_eq "error count" "5" "$(jq -r .errorCount "$S")"
check "status line counts the others" grep -q "(+4 more)" "$MNT/datasets/bad/status"
check "passwd was never read (no line of it anywhere)" bash -c "! grep -rq 'root:x:0' '$STORE/datasets/bad'"
check "the fine image is found" jqe '.imagesFound >= 3' "$S"

# ---- missing images: incomplete, then ready when they arrive ----
M=$SRC/miss
mkdir -p "$M"
printf '%s\n' \
    "1 a.png 100 80 1" "2 b.png 100 80 1" "3 sub/c.png 100 80 2" "4 d.png 100 80 2" | mkcoco "$M/ann.json"
mkdir "$MNT/datasets/miss"
cp "$M/ann.json" "$MNT/datasets/miss/"
check "4 missing" wait_status "$MNT/datasets/miss/status" "incomplete: 4 images missing" 10
check_eq "missing images listed as warnings" "4" \
    "$(jq '[.warnings[] | select(.code == "datasetCorrupt" and (.message | test("not found")))] | length' "$MNT/datasets/miss/status.json")"
$MKIMG "$SRC/a.png" 100 80 1
cp "$SRC/a.png" "$MNT/datasets/miss/"
check "3 missing after one arrives" wait_status "$MNT/datasets/miss/status" "incomplete: 3 images missing" 10
mkdir "$MNT/datasets/miss/images"
$MKIMG "$MNT/datasets/miss/images/b.png" 100 80 2
check "found by base name under images/" wait_status "$MNT/datasets/miss/status" "incomplete: 2 images missing" 10
mkdir "$MNT/datasets/miss/sub"
$MKIMG "$MNT/datasets/miss/sub/c.png" 100 80 3
$MKIMG "$MNT/datasets/miss/d.png" 100 80 4
check "ready when all are there" wait_status "$MNT/datasets/miss/status" "ready: 4 images, 3 categories, 0 boxes (classification)" 10
rm "$MNT/datasets/miss/d.png"
check "rm of an image: incomplete again" wait_status "$MNT/datasets/miss/status" "incomplete: 1 images missing" 10

# ---- deep nesting and odd JSON are refused or reported, never fatal ----
python3 -c 'print("[" * 100000 + "]" * 100000)' > "$SRC/deep.json"
check_err "deeply nested JSON: EINVAL" "Invalid argument" cp "$SRC/deep.json" "$MNT/datasets/miss/deep.json"
check "the mount is alive" test -f "$MNT/README"

vfs_umount
vfs_done
