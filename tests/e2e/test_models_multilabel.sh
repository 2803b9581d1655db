# test_models_multilabel.sh: a multilabel dataset and model as a user sees
# them. The clothing images of ../shared/datasets get two tags each, their
# fine category (t-shirt, shirt, pants, shorts, shoes) and a coarse one
# (upper, lower, footwear; tests/e2e/mkmultilabel.py): the dataset's status
# says multilabel; a model trains through the mount without "kind" (detected)
# against a test dataset; evaluation.json has per-tag AP, precision, recall
# and thresholds, and a mean AP far above chance; predict/ lists both tags of
# a test image, best first, and an image with no tag above its threshold
# gets an empty list; evaluations/DATASET and export/import agree;
# "kind": "classifier" on the dataset is refused with a message naming
# multilabel; with curl, the HTTP analyze call answers what predict/ does.
# Skips (77) without the shared datasets.
export VFS_E2E_TIMEOUT=${VFS_E2E_TIMEOUT:-1200}
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0
CLOTHING=
for d in /work/shared/datasets/clothing "$E2E_DIR/../../../shared/datasets/clothing"; do
    [ -f "$d/train.json" ] && CLOTHING=$d && break
done
[ -n "$CLOTHING" ] || { echo "skipped: ../shared/datasets/clothing absent"; exit 77; }

python3 "$E2E_DIR/mkmultilabel.py" "$CLOTHING" train "$SRC/ml" 6 0 >/dev/null
python3 "$E2E_DIR/mkmultilabel.py" "$CLOTHING" test "$SRC/mltest" 4 1 >/dev/null
# a blank grey image: no clothing, so it should get few tags (whatever it
# gets, the answer is a list, not an error)
python3 -c "
import struct, zlib
W = H = 128
raw = b''.join(b'\x00' + bytes([128] * W * 3) for _ in range(H))
c = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
open('$SRC/grey.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + c(b'IHDR', struct.pack('>IIBBBBB', W, H, 8, 2, 0, 0, 0)) + c(b'IDAT', zlib.compress(raw)) + c(b'IEND', b''))"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
vfs_mount --http "127.0.0.1:$PORT"
for d in ml mltest; do
    mkdir "$MNT/datasets/$d"
    cp -r "$SRC/$d/." "$MNT/datasets/$d/"
done
for d in ml mltest; do
    check "dataset $d ready" wait_status "$MNT/datasets/$d/status" ready 120
done
check_eq "status names the kind, tags and tags per image" \
    "ready: 30 images, 8 tags, up to 2 per image (multilabel)" "$(cat "$MNT/datasets/ml/status")"
check_eq "status.json kind" "multilabel" "$(jq -r .kind "$MNT/datasets/ml/status.json")"
check_eq "status.json maxTagsPerImage" "2" "$(jq -r .maxTagsPerImage "$MNT/datasets/ml/status.json")"

# a classifier cannot train on it; the message says what the dataset is
mkdir "$MNT/models/wrong"
echo '{"dataset": "ml", "kind": "classifier", "budget_minutes": 1}' >"$SRC/w.json"
cp "$SRC/w.json" "$MNT/models/wrong/train.json" 2>/dev/null || true
check "a classifier on a multilabel dataset is refused" wait_status "$MNT/models/wrong/status" \
    "failed: incorrectModelKind" 60
check "the refusal names multilabel" grep -q "multilabel" "$MNT/models/wrong/status"

M=$MNT/models/m
mkdir "$M"
echo '{"dataset": "ml", "test_dataset": "mltest", "budget_minutes": 3}' >"$SRC/t.json"
cp "$SRC/t.json" "$M/train.json"
check "multilabel model trained (kind detected)" wait_status "$M/status" succeeded 900
check_eq "status.json kind" "multilabel" "$(jq -r '.kind // .modelKind // empty' "$M/status.json" | head -1)"
E=$M/evaluation.json
cat "$E"
for tag in t-shirt shirt pants shorts shoes upper lower footwear; do
    check "evaluation.json: $tag has AP, precision, recall, threshold" \
        jq -e --arg t "$tag" '.tagPerformance[$t] | (.averagePrecision >= 0 and .averagePrecision <= 1
            and .precision >= 0 and .recall >= 0 and .threshold > 0 and .imageCount > 0)' "$E"
done
map=$(jq -r .averagePrecision "$E")
echo "mean AP on mltest: $map"
# chance: a random ranking has AP near the tag's share of the test images:
# 0.2 for each fine tag and footwear, 0.4 for upper and lower, so a mean AP
# of (6 x 0.2 + 2 x 0.4) / 8 = 0.25. 0.6 is far above it.
check "mean AP $map > 0.6 (chance 0.25)" python3 -c "import sys; sys.exit(0 if $map > 0.6 else 1)"
check_eq "evaluatedOn the test dataset" "mltest" "$(jq -r .evaluatedOn.dataset "$E")"
check "report.html is offered" test -s "$M/report.html"

# predict: a pair of trousers from the test split gets pants and lower
img=$(jq -r '[.annotations[] | select(.category_id == 3)][0].image_id as $i
    | .images[] | select(.id == $i) | .file_name' "$SRC/mltest/annotations.json")
cp "$SRC/mltest/$img" "$M/predict/p.jpg"
r=$(cat "$M/predict/p.jpg.json")
echo "$r" | jq -c .customModelResult
names=$(echo "$r" | jq -r '[.customModelResult.tagsResult.values[].name] | sort | join(",")')
check "pants image gets pants and lower ($names)" sh -c "echo '$names' | grep -q pants && echo '$names' | grep -q lower"
check "tags sorted by confidence" \
    sh -c "echo '$r' | jq -e '[.customModelResult.tagsResult.values[].confidence] | . == (sort | reverse)'"
if command -v curl >/dev/null; then
    a=$(curl -s -X POST -H "Ocp-Apim-Subscription-Key: $(cat "$STORE/http-key")" \
        -H 'Content-Type: application/octet-stream' --data-binary @"$SRC/mltest/$img" \
        "http://127.0.0.1:$PORT/computervision/imageanalysis:analyze?model-name=m&api-version=2023-04-01-preview")
    check_eq "HTTP analyze answers what predict/ does" "$(echo "$r" | jq -c .customModelResult)" \
        "$(echo "$a" | jq -c .customModelResult)"
fi
# every listed tag is at or above its threshold
check "listed tags reach their thresholds" sh -c "echo '$r' | jq -e --slurpfile e '$E' \
    'all(.customModelResult.tagsResult.values[]; .confidence >= \$e[0].tagPerformance[.name].threshold - 1e-4)'"
cp "$SRC/grey.png" "$M/predict/grey.png"
check "an image without tags gets a list" jq -e '.customModelResult.tagsResult.values | type == "array"' \
    "$M/predict/grey.png.json"
# scores of all tags for one image: fewer tags listed than the model has
check "not every tag is listed" test "$(echo "$r" | jq '.customModelResult.tagsResult.values | length')" -lt 8

# evaluations/DATASET: the same metrics as training's test evaluation
mkdir "$M/evaluations/mltest"
check "evaluation on mltest succeeds" wait_status "$M/evaluations/mltest/status" succeeded 300
check_eq "metrics.json mean AP matches evaluation.json" "$map" \
    "$(jq -r .averagePrecision "$M/evaluations/mltest/metrics.json")"
check_eq "predictions.json: one result per image and tag" "160" \
    "$(jq length "$M/evaluations/mltest/predictions.json")"

# export and import: the same answers
cp "$M/model.safetensors" "$SRC/ml.safetensors"
check "exported file is kind multilabel" python3 -c "
import json, struct, sys
b = open('$SRC/ml.safetensors', 'rb').read()
h = json.loads(b[8:8 + struct.unpack('<Q', b[:8])[0]])
sys.exit(0 if h['__metadata__']['kind'] == 'multilabel' and 'head.threshold' in h else 1)"
mkdir "$MNT/models/imp"
check "import into an empty model" cp "$SRC/ml.safetensors" "$MNT/models/imp/model.safetensors"
check_eq "imported model is succeeded" "succeeded" "$(cat "$MNT/models/imp/status")"
cp "$SRC/mltest/$img" "$MNT/models/imp/predict/p.jpg"
check_eq "imported model answers the same" "$(echo "$r" | jq -c .customModelResult)" \
    "$(jq -c .customModelResult "$MNT/models/imp/predict/p.jpg.json")"
check "README names the multilabel kind" grep -q "multilabel" "$MNT/README"

vfs_done
