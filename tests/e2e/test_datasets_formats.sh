# test_datasets_formats.sh: Pascal VOC and YOLO dataset folders through the
# mount, as a user would: cp -r of a VOC folder (Annotations/ + JPEGImages/)
# and of a YOLO folder (images/ + labels/ + data.yaml) made from the same
# drawn images, the format in status and status.json, datasets/NAME/coco.json
# (generated, read-only: ls, cat, cp work, writes refused, rm leaves it, the
# last ready version kept while not ready, rm -r of the dataset works; the
# same images, boxes and categories as the source; a COCO dataset does not
# take it for a second annotation file), problems named by file and line or
# element, a folder mixing COCO and VOC refused naming both files (and
# nothing deleted), and a detector trained from each format.
# two trainings of 2 CPU minutes each on a shared machine: more than lib.sh's 600 s
export VFS_E2E_TIMEOUT=${VFS_E2E_TIMEOUT:-870}
source "$(dirname "$0")/lib.sh"

MKDET="python3 $E2E_DIR/test_detect_mkdata.py"
MKFMT="python3 $E2E_DIR/mkformats.py"

$MKDET det "$SRC/coco" 12 1
$MKFMT voc "$SRC/coco" "$SRC/voc"
$MKFMT yolo "$SRC/coco" "$SRC/yolo"
n_img=$(jq '.images | length' "$SRC/coco/annotations.json")
n_ann=$(jq '.annotations | length' "$SRC/coco/annotations.json")
echo "source: $n_img images, $n_ann boxes"

vfs_mount
D=$MNT/datasets
mkdir "$D/voc" "$D/yolo" "$D/coco"
check "cp -r a VOC folder" cp -r "$SRC/voc/." "$D/voc/"
check "cp -r a YOLO folder" cp -r "$SRC/yolo/." "$D/yolo/"
check "cp -r a COCO folder" cp -r "$SRC/coco/." "$D/coco/"
for d in voc yolo coco; do
    check "dataset $d ready" wait_status "$D/$d/status" ready 60
done
echo "voc: $(cat "$D/voc/status")"
echo "yolo: $(cat "$D/yolo/status")"
check_eq "status names Pascal VOC" "ready: $n_img images, 2 categories, $n_ann boxes (detection, Pascal VOC)" \
    "$(cat "$D/voc/status")"
check_eq "status names YOLO" "ready: $n_img images, 2 categories, $n_ann boxes (detection, YOLO)" \
    "$(cat "$D/yolo/status")"
check_eq "status.json format voc" "voc" "$(jq -r .format "$D/voc/status.json")"
check_eq "status.json format yolo" "yolo" "$(jq -r .format "$D/yolo/status.json")"
check_eq "status.json format coco" "coco" "$(jq -r .format "$D/coco/status.json")"
check_eq "status.json counts the VOC files" "$n_img" "$(jq -r .annotationFileCount "$D/voc/status.json")"

# coco.json: the dataset as one COCO file
for d in voc yolo coco; do
    C=$D/$d/coco.json
    check "$d: ls shows coco.json" bash -c "ls '$D/$d' | grep -qx coco.json"
    check "$d: coco.json is read-only (mode 0444)" test "$(stat -c %a "$C")" = 444
    check "$d: cp coco.json out" cp "$C" "$SRC/$d-export.json"
    check "$d: cp gives what cat gives" cmp -s "$SRC/$d-export.json" <(cat "$C")
    check_eq "$d: coco.json images" "$n_img" "$(jq '.images | length' "$C")"
    check_eq "$d: coco.json annotations" "$n_ann" "$(jq '.annotations | length' "$C")"
    check_eq "$d: coco.json categories" '["disc","square"]' "$(jq -c '[.categories[].name] | sort' "$C")"
    check "$d: boxes relative (0..1), every image sized" jqe \
        '(all(.annotations[].bbox[]; . >= 0 and . <= 1)) and all(.images[]; .width == 200 and .height == 140)' "$C"
    # the same boxes as the source, per image base name and category (VOC rounds to pixels)
    check "$d: the same boxes as the source" python3 - "$SRC/coco/annotations.json" "$C" <<'PY'
import json, os, sys
def boxes(path):
    d = json.load(open(sys.argv[1] if path == 0 else sys.argv[2]))
    names = {c["id"]: c["name"] for c in d["categories"]}
    files = {i["id"]: os.path.basename(i["file_name"]) for i in d["images"]}
    return sorted((files[a["image_id"]], names[a["category_id"]], *a["bbox"]) for a in d["annotations"])
a, b = boxes(0), boxes(1)
ok = len(a) == len(b) and all(x[:2] == y[:2] and all(abs(p - q) < 0.006 for p, q in zip(x[2:], y[2:]))
                              for x, y in zip(a, b))
sys.exit(0 if ok else 1)
PY
    check "$d: the file names lead to the images" python3 -c '
import json, os, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if all(os.path.isfile(os.path.join(sys.argv[2], i["file_name"])) for i in d["images"]) else 1)' "$C" "$D/$d"
    check_err "$d: writing coco.json refused" "Permission denied" cp "$SRC/coco/annotations.json" "$C"
    rm -f "$C" 2>/dev/null || true
    check "$d: rm leaves coco.json" test -s "$C"
done
check_eq "the VOC export names JPEGImages/" "JPEGImages/s1_0.png" "$(jq -r '.images[0].file_name' "$D/voc/coco.json")"
check "the COCO dataset did not take coco.json for an annotation file" jqe \
    '.annotationFile == "annotations.json" and (has("otherAnnotationFiles") | not) and .state == "ready"' \
    "$D/coco/status.json"
check "the exported file is a dataset of its own" bash -c "mkdir '$D/again' && cp -r '$SRC/yolo/images' '$D/again/' && cp '$SRC/yolo-export.json' '$D/again/ann.json'"
check "the exported dataset is ready" wait_status "$D/again/status" "ready: $n_img images, 2 categories, $n_ann boxes (detection)" 60

# problems: file and line (YOLO), file and element (VOC)
mkdir "$D/badyolo" "$D/badvoc"
cp -r "$SRC/yolo/." "$D/badyolo/"
printf '0 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.1 0.1\n' >"$SRC/bad.txt"
cp "$SRC/bad.txt" "$D/badyolo/labels/s1_2.txt"
check "a YOLO line outside 0..1: invalid, file and line" \
    wait_status "$D/badyolo/status" "invalid: datasetAnnotationsInvalid: labels/s1_2.txt:2: x_center 1.5 is outside 0..1" 30
check "status.json: path and hint" jqe \
    '.errors[0].path == "labels/s1_2.txt:2" and (.errors[0].hint | test("0..1"))' "$D/badyolo/status.json"
cp -r "$SRC/voc/." "$D/badvoc/"
sed 's|<xmax>[0-9]*</xmax>|<xmax>900</xmax>|' "$SRC/voc/Annotations/s1_3.xml" >"$SRC/s1_3.xml"
cp "$SRC/s1_3.xml" "$D/badvoc/Annotations/s1_3.xml"
check "a VOC box outside the image: invalid, file and element" \
    wait_status "$D/badvoc/status" "invalid: datasetAnnotationsInvalid: Annotations/s1_3.xml: annotation/object[1]/bndbox (line" 30
echo "badvoc: $(cat "$D/badvoc/status")"
cp "$SRC/voc/Annotations/s1_3.xml" "$D/badvoc/Annotations/s1_3.xml"
check "fixed: ready again" wait_status "$D/badvoc/status" ready 30
check "and exported" wait_jq "$D/badvoc/coco.json" '.annotations | length' "$n_ann" 30

# mixed formats: an error naming the files; nothing is deleted
mkdir "$D/mixed"
cp -r "$SRC/voc/." "$D/mixed/"
check "VOC alone ready" wait_status "$D/mixed/status" ready 30
check "a COCO file into a VOC dataset is accepted" cp "$SRC/coco/annotations.json" "$D/mixed/"
check "mixed formats: invalid, naming both files" wait_status "$D/mixed/status" \
    'invalid: datasetAnnotationsInvalid: annotation formats are mixed: "annotations.json" is COCO, "Annotations/s1_0.xml" is Pascal VOC' 30
check "status.json says mixed, with a hint" jqe '.format == "mixed" and (.errors[0].hint | test("one annotation format"))' "$D/mixed/status.json"
check "nothing was deleted" test -f "$D/mixed/annotations.json" -a -f "$D/mixed/Annotations/s1_0.xml" -a -f "$D/mixed/JPEGImages/s1_0.png"
check "a mixed dataset keeps its last ready export" jqe '.images[0].file_name == "JPEGImages/s1_0.png"' "$D/mixed/coco.json"
mkdir -p "$SRC/lbl/labels"
cp "$SRC/yolo/labels/s1_0.txt" "$SRC/lbl/labels/"
rm "$D/mixed/annotations.json"
cp -r "$SRC/lbl/labels" "$D/mixed/"
check "VOC and YOLO mixed: invalid, naming both" wait_status "$D/mixed/status" \
    'invalid: datasetAnnotationsInvalid: annotation formats are mixed: "Annotations/s1_0.xml" is Pascal VOC, "labels/s1_0.txt" is YOLO' 30
rm -r "$D/mixed/labels"
check "one format again: ready" wait_status "$D/mixed/status" ready 30
check "rm -r of a dataset with its export" rm -r "$D/mixed"
check "the dataset is gone" test ! -e "$D/mixed"

# a detector from each format
BB=$(backbones_dir)
if [ -n "$BB" ] && [ -f "$BB/centernet/model.json" ]; then
    for d in voc yolo; do
        mkdir "$MNT/models/m$d"
        echo "{\"dataset\": \"$d\", \"kind\": \"detector\", \"budget_minutes\": 2}" >"$SRC/t$d.json"
        check "train.json for $d accepted" cp "$SRC/t$d.json" "$MNT/models/m$d/train.json"
    done
    for d in voc yolo; do
        check "detector from $d succeeded" wait_status "$MNT/models/m$d/status" succeeded 600
        echo "m$d: $(cat "$MNT/models/m$d/status"); evaluation: $(jq -c '{meanAveragePrecision50, evaluatedOn}' "$MNT/models/m$d/evaluation.json" 2>/dev/null)"
        check "$d: evaluation.json has mAP50" jqe '.meanAveragePrecision50 >= 0' "$MNT/models/m$d/evaluation.json"
        check "$d: the model's tags are the dataset's" jqe \
            '(.tagPerformance | keys) == ["disc", "square"]' "$MNT/models/m$d/evaluation.json"
    done
else
    echo "no centernet backbone installed: training from VOC and YOLO not run"
fi

vfs_done
