# test_detect.sh: a detector end to end through the mount, as a user would:
# shapes on textured backgrounds with the boxes the test drew; train (kind
# from the dataset), evaluation.json, predict/ (IMAGE.json in Azure's shape,
# boxes that find the drawn shapes, IMAGE.boxes.jpg a JPEG), evaluations/
# (predictions.json in COCO results format scoring what metrics.json says,
# incorrectModelKind on a classification set), calibrated confidences (tag
# accuracy, shapes found at >= 0.5), an unreadable image's error naming it
# as the user sees it, an image without boxes taken as background, the CPU
# budget (cut short and said, notEnoughBudget), the crop classifier tried
# and its figures logged, refusals (detector on a
# classification dataset, a category with one image), export and import.
source "$(dirname "$0")/lib.sh"

MK="python3 $E2E_DIR/test_detect_mkdata.py"
need_backbone centernet

$MK det "$SRC/train" 12 1
$MK det "$SRC/test" 5 2
$MK onecat "$SRC/onecat" 3
python3 "$E2E_DIR/test_models_mkdata.py" cls "$SRC/cls" 3 1
truth=$($MK one "$SRC/one.png" 77)
echo "drawn in one.png: $truth"

vfs_mount
for d in train test onecat cls; do
    mkdir "$MNT/datasets/$d"
    cp -r "$SRC/$d/." "$MNT/datasets/$d/"
done
for d in train test onecat cls; do
    check "dataset $d ready" wait_status "$MNT/datasets/$d/status" ready 60
done

M=$MNT/models/det
mkdir "$M"
# refusals
echo '{"dataset": "cls", "kind": "detector"}' >"$SRC/bad.json"
check_err "detector on a classification dataset refused" "Invalid argument" \
    cp "$SRC/bad.json" "$M/train.json"
check "status says incorrectModelKind" grep -q "failed: incorrectModelKind" "$M/status"
mkdir "$MNT/models/one"
echo '{"dataset": "onecat", "kind": "detector", "budget_minutes": 5}' >"$SRC/one.json"
cp "$SRC/one.json" "$MNT/models/one/train.json"
check "a category with one image fails before training" \
    wait_status "$MNT/models/one/status" "failed" 120
echo "status: $(cat "$MNT/models/one/status")"
check "the message names the category" grep -Eq 'square.* (has|only) 1 (training )?image' \
    "$MNT/models/one/status"

# training: kind from the dataset (boxes mean detector)
echo '{"dataset": "train", "test_dataset": "test", "budget_minutes": 5}' >"$SRC/train.json"
check "train.json accepted" cp "$SRC/train.json" "$M/train.json"
all=""
for i in $(seq 5400); do
    s=$(head -n 1 "$M/status" 2>/dev/null || true)
    [[ "$s" == training* ]] && all="$all$s
"
    [[ "$s" == succeeded || "$s" == failed* ]] && break
    sleep 0.1
done
check_eq "training succeeded" "succeeded" "$s"
cat "$M/log"
# the final fit and the evaluation are trials 1/2 and 2/2 at 80 and 90 %: the status used to
# say 99 % (trial 2/2) from the final fit on
check_eq "no status line says 99% while the detector trains" "" \
    "$(printf '%s' "$all" | grep -E '^training 99%' | sort -u)"
# test_detect_mkdata.py draws the last image of a set without shapes
check "the log says the image without boxes is background" \
    grep -q "1 training images have no boxes: they are background" "$M/log"
E=$M/evaluation.json
check "evaluation.json is JSON" jqe . "$E"
map50=$(jq -r .meanAveragePrecision50 "$E")
echo "evaluation.json: $(jq -c 'del(.recipe)' "$E")"
check "mAP@50 is high on drawn shapes ($map50)" \
    python3 -c "import sys; sys.exit(0 if float('$map50') >= 0.7 else 1)"
check "mAP30 >= mAP50 >= mAP75" jqe \
    '.meanAveragePrecision30 >= .meanAveragePrecision50 and .meanAveragePrecision50 >= .meanAveragePrecision75' "$E"
check "tagPerformance per tag" jqe '.tagPerformance.disc.averagePrecision50 >= 0 and .tagPerformance.square.averagePrecision50 >= 0' "$E"
check_eq "evaluatedOn the test dataset" "test 6" "$(jq -r '"\(.evaluatedOn.dataset) \(.evaluatedOn.imageCount)"' "$E")"
check "trainingCostInMinutes and stopReason" jqe '(.trainingCostInMinutes > 0) and (.stopReason | length > 0)' "$E"
check "status.json names the detector" jqe '.status == "succeeded"' "$M/status.json"
# the second stage is tried whenever Lite0 is there and images can be held out
if [ -e "$(backbones_dir)/efficientnet-lite0" ]; then
    check "the log gives the crop classifier's cross-validated figures" grep -Eq \
        "crop classifier \(efficientnet-lite0 crops, [0-9]+ of them.*against [0-9.]+: (kept|not kept)" \
        "$M/log"
    check "evaluation.json's recipe gives the crop classifier's weight" \
        jqe '.recipe.crop_classifier.weight >= 0' "$E"
fi

# predict
cp "$SRC/one.png" "$M/predict/one.png"
r=$(cat "$M/predict/one.png.json")
check "analyze shape: the keys Azure returned" \
    jqe '(keys == ["customModelResult", "metadata", "modelVersion"]) and (.customModelResult | keys == ["objectsResult"])' <<<"$r"
check "objects have string ids, integer pixels, w and h at least 1" \
    jqe '[.customModelResult.objectsResult.values[] | (.id | type == "string") and (.boundingBox.x | floor) == .boundingBox.x and .boundingBox.w >= 1 and .boundingBox.h >= 1] | all' <<<"$r"
check_eq "analyze shape: width" "200" "$(jq -r .metadata.width <<<"$r")"
check_eq "analyze shape: height" "140" "$(jq -r .metadata.height <<<"$r")"
check "objects in Azure's shape" jqe '.customModelResult.objectsResult.values[0] | (.boundingBox | has("x") and has("y") and has("w") and has("h")) and (.tags[0] | has("name") and has("confidence"))' <<<"$r"
check "objects best first" jqe '[.customModelResult.objectsResult.values[].tags[0].confidence] | . == (sort | reverse)' <<<"$r"
check "boxes inside the image" jqe 'all(.customModelResult.objectsResult.values[].boundingBox; .x >= 0 and .y >= 0 and .x + .w <= 200.001 and .y + .h <= 140.001)' <<<"$r"
check "confidences are calibrated: tag accuracy (confident detections) is not 0" jqe \
    '.tagPerformance.disc.accuracy > 0 and .tagPerformance.square.accuracy > 0' "$E"
check "the model file keeps the calibration" jqe '.recipe.confidence.a > 0' "$E"
check "every drawn shape found (IoU >= 0.5, right tag, confidence >= 0.5)" python3 - "$truth" "$r" <<'EOF'
import json, sys
truth, res = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def iou(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)
objs = res["customModelResult"]["objectsResult"]["values"]
for cat, x, y, w, h in truth:
    best = max((iou([x, y, w, h], [o["boundingBox"][k] for k in "xywh"])
                for o in objs if o["tags"][0]["name"] == cat and o["tags"][0]["confidence"] >= 0.5),
               default=0)
    print(cat, "best IoU", round(best, 3))
    if best < 0.5:
        sys.exit(1)
EOF
check "boxes.jpg listed" test -e "$M/predict/one.png.boxes.jpg"
check "boxes.jpg is a JPEG" python3 -c "
import sys
b = open('$M/predict/one.png.boxes.jpg', 'rb').read()
sys.exit(0 if b[:3] == b'\xff\xd8\xff' and b[-2:] == b'\xff\xd9' else 1)"
cp "$M/predict/one.png.boxes.jpg" "$SRC/boxes.jpg"
# an error names the image as the user sees it, never the store's path
printf 'not an image at all\n' >"$SRC/text.png"
cp "$SRC/text.png" "$M/predict/text.png"
check_eq "not an image: InvalidImageFormat" "InvalidImageFormat" \
    "$(jq -r .error.code "$M/predict/text.png.json")"
echo "error: $(jq -r .error.message "$M/predict/text.png.json")"
check_eq "the message names predict/text.png" "1" \
    "$(jq -r .error.message "$M/predict/text.png.json" | grep -c -F "predict/text.png")"
check "no store path in the detector's predict/*.json" sh -c "! grep -l -F '$STORE' '$M'/predict/*.json"
check "boxes.jpg differs from the image (boxes drawn)" python3 -c "
import sys; sys.exit(0 if len(open('$SRC/boxes.jpg','rb').read()) > 1000 else 1)"
printf 'not an image\n' >"$SRC/text.png"
cp "$SRC/text.png" "$M/predict/text.png"
check_eq "not an image" "InvalidImageFormat" "$(jq -r .error.code "$M/predict/text.png.json")"

# evaluations/
mkdir "$M/evaluations/test"
check "evaluation on test succeeds" wait_status "$M/evaluations/test/status" succeeded 300
check_eq "metrics.json mAP@50 matches evaluation.json" "$map50" \
    "$(jq -r .meanAveragePrecision50 "$M/evaluations/test/metrics.json")"
P=$M/evaluations/test/predictions.json
check "predictions.json in COCO results format" jqe \
    'length > 0 and all(.[]; has("image_id") and has("category_id") and (.bbox | length == 4) and has("score"))' "$P"
check "predictions use the dataset's category ids" jqe 'all(.[]; .category_id == 1 or .category_id == 2)' "$P"
check "at most 100 per image" jqe 'group_by(.image_id) | all(length <= 100)' "$P"
check "predictions.json scores what metrics.json says" python3 - "$SRC/test/annotations.json" "$P" "$map50" <<'EOF'
import json, sys
# an independent COCO AP@50 (101-point, greedy by score, max 100 per image)
gt, dt, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
size = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
def iou(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)
aps = []
for c in [c["id"] for c in gt["categories"]]:
    g = {}
    for a in gt["annotations"]:
        if a["category_id"] == c:
            w, h = size[a["image_id"]]
            x, y, bw, bh = a["bbox"]
            g.setdefault(a["image_id"], []).append([x * w, y * h, bw * w, bh * h])
    npos = sum(len(v) for v in g.values())
    if not npos:
        continue
    ds = {}
    for d in dt:
        if d["category_id"] == c:
            ds.setdefault(d["image_id"], []).append(d)
    hits = []
    for im, v in ds.items():
        v = sorted(v, key=lambda d: -d["score"])[:100]
        used = set()
        for d in v:
            best, bi = 0.5, -1
            for k, b in enumerate(g.get(im, [])):
                if k in used:
                    continue
                o = iou(d["bbox"], b)
                if o >= best:
                    best, bi = o, k
            if bi >= 0:
                used.add(bi)
            hits.append((d["score"], bi >= 0))
    hits.sort(key=lambda t: -t[0])
    tp = fp = 0
    prec, rec = [], []
    for _, h in hits:
        tp += h
        fp += not h
        prec.append(tp / (tp + fp))
        rec.append(tp / npos)
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    ap, j = 0.0, 0
    for t in [i / 100 for i in range(101)]:
        while j < len(rec) and rec[j] < t:
            j += 1
        ap += prec[j] if j < len(rec) else 0
    aps.append(ap / 101)
got = round(sum(aps) / len(aps), 4)
print("independent mAP@50", got, "reported", want)
sys.exit(0 if abs(got - want) < 1e-4 else 1)
EOF
mkdir "$M/evaluations/cls"
check "evaluation on a classification dataset" \
    wait_status "$M/evaluations/cls/status" "failed: incorrectModelKind" 30

# the CPU budget: with the features cached, a tiny budget stops early and
# says so; with images never seen, it is refused before training
mkdir "$MNT/models/quick"
echo '{"dataset": "train", "test_dataset": "test", "budget_minutes": 0.01}' >"$SRC/quick.json"
cp "$SRC/quick.json" "$MNT/models/quick/train.json"
check "tiny budget, cached features: succeeded" wait_status "$MNT/models/quick/status" succeeded 240
echo "quick: $(jq -c '{trainingCostInMinutes, stopReason}' "$MNT/models/quick/evaluation.json")"
check "tiny budget: stopReason says budget" \
    jqe '.stopReason | startswith("budget")' "$MNT/models/quick/evaluation.json"
# (not an absolute bound: sanitizer builds are ten times slower)
full=$(jq -r .trainingCostInMinutes "$E")
check "tiny budget: far cheaper than the full run ($full minutes)" \
    jqe ".trainingCostInMinutes < $full / 2" "$MNT/models/quick/evaluation.json"
$MK det "$SRC/fresh" 30 9
mkdir "$MNT/datasets/fresh"
cp -r "$SRC/fresh/." "$MNT/datasets/fresh/"
check "dataset fresh ready" wait_status "$MNT/datasets/fresh/status" ready 60
mkdir "$MNT/models/poor"
echo '{"dataset": "fresh", "budget_minutes": 0.001}' >"$SRC/poor.json"
cp "$SRC/poor.json" "$MNT/models/poor/train.json"
check "budget below feature extraction: notEnoughBudget" \
    wait_status "$MNT/models/poor/status" "failed: notEnoughBudget" 120
echo "poor: $(cat "$MNT/models/poor/status")"
check "the message gives the minimum and a suggested budget" \
    grep -q "minimum .* suggested" "$MNT/models/poor/status"

# export and import
check "export: cp model.safetensors out" cp "$M/model.safetensors" "$SRC/det.safetensors"
check "export is a detector safetensors file" python3 -c "
import json, struct, sys
b = open('$SRC/det.safetensors', 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
m = h['__metadata__']
sys.exit(0 if m['kind'] == 'detector' and json.loads(m['categories']) == ['disc', 'square']
         and m['backbone'] == 'centernet' and len(m['backbone_checksum']) == 64
         and 'heatmap.weight' in h and 'box.weight' in h else 1)"
mkdir "$MNT/models/imp"
check "import into an empty model" cp "$SRC/det.safetensors" "$MNT/models/imp/model.safetensors"
check "imported model is succeeded" wait_status "$MNT/models/imp/status" succeeded 30
cp "$SRC/one.png" "$MNT/models/imp/predict/one.png"
check_eq "imported model finds the same objects" \
    "$(jq -c .customModelResult "$M/predict/one.png.json")" \
    "$(jq -c .customModelResult "$MNT/models/imp/predict/one.png.json")"
check "imported model draws boxes" test -s "$MNT/models/imp/predict/one.png.boxes.jpg"

# survives a remount
vfs_umount
vfs_mount
cp "$SRC/one.png" "$M/predict/after.png"
check_eq "predicts the same after remount" \
    "$(jq -c .customModelResult.objectsResult.values "$M/predict/one.png.json")" \
    "$(jq -c .customModelResult.objectsResult.values "$M/predict/after.png.json")"
vfs_done
