# test_models.sh: a classifier end to end through the mount, as a user would:
# refused train.json (EINVAL + status says why), training with status/log,
# evaluation.json, predict/ (one image, cp -r of many, unusable images),
# evaluations/DATASET with its error codes, export and import of
# model.safetensors (same scores), a malformed import refused.
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0 centernet

$MK cls "$SRC/train" 6 1
$MK cls "$SRC/test" 3 2
$MK det "$SRC/det" 3 3
mkdir -p "$SRC/many"
for c in disc stripes checker; do
    for i in $(seq 8); do $MK one "$SRC/many/${c}_$i.png" $c $((100 + i)); done
done
$MK one "$SRC/one.png" stripes 7
printf 'not an image at all\n' >"$SRC/text.png"
$MKIMG "$SRC/tiny.png" 20 20 1
$MKIMG "$SRC/edge50.png" 50 50 2
$MKIMG "$SRC/edge51.png" 51 51 3

vfs_mount
for d in train test det; do
    mkdir "$MNT/datasets/$d"
    cp -r "$SRC/$d/." "$MNT/datasets/$d/"
done
for d in train test det; do
    check "dataset $d ready" wait_status "$MNT/datasets/$d/status" ready 60
done

M=$MNT/models/m
# names and creation
check_err "bad model name refused" "Invalid argument" mkdir "$MNT/models/a b"
check "mkdir models/m" mkdir "$M"
check_err "existing model refused" "File exists" mkdir "$M"
check_eq "new model is notStarted" "notStarted" "$(cat "$M/status")"
check "predict/ hidden before training" test ! -e "$M/predict"
check "evaluations/ hidden before training" test ! -e "$M/evaluations"

# refused requests: close() fails with EINVAL and status says why
echo 'this is not json' >"$SRC/bad1.json"
check_err "non-JSON train.json refused" "Invalid argument" cp "$SRC/bad1.json" "$M/train.json"
check "status says not valid JSON" grep -q "failed: invalidRequest: .*not valid JSON" "$M/status"
check "no train.json kept" test ! -e "$M/train.json"
echo '{"dataset": "nope"}' >"$SRC/bad2.json"
check_err "unknown dataset refused" "Invalid argument" cp "$SRC/bad2.json" "$M/train.json"
check "status says datasetNotFound" grep -q 'failed: datasetNotFound: dataset "nope"' "$M/status"
echo '{"dataset": "det", "kind": "classifier"}' >"$SRC/bad3.json"
check_err "classifier on a detection dataset refused" "Invalid argument" \
    cp "$SRC/bad3.json" "$M/train.json"
check "status says incorrectModelKind" grep -q "failed: incorrectModelKind: .*detection" "$M/status"
check_eq "status.json carries the error" "incorrectModelKind" "$(jq -r '.errors[0].code' "$M/status.json")"
echo '{"dataset": "train", "budget_minutes": -1}' >"$SRC/bad4.json"
check_err "negative budget refused" "Invalid argument" cp "$SRC/bad4.json" "$M/train.json"
echo '{"dataset": "train", "budget_minutes": 1, "budget_minutes": 600}' >"$SRC/bad5.json"
check_err "a key given twice refused" "Invalid argument" cp "$SRC/bad5.json" "$M/train.json"
check "status names the repeated key" grep -q '"budget_minutes" is given twice' "$M/status"

# train with Azure's request body
cat >"$SRC/train.json" <<'EOF'
{"trainingParameters": {"trainingDatasetName": "train", "timeBudgetInHours": 0.02,
  "modelKind": "Generic-Classifier"}, "evaluationParameters": {"testDatasetName": "test"}}
EOF
check "train.json accepted" cp "$SRC/train.json" "$M/train.json"
seen="" all=""
for i in $(seq 3000); do
    s=$(cat "$M/status")
    [[ "$s" == training* ]] && [ -z "$seen" ] && seen=$s
    [[ "$s" == training* ]] && all="$all$s
"
    [[ "$s" == succeeded || "$s" == failed* ]] && break
    sleep 0.1
done
check_eq "training succeeded" "succeeded" "$s"
echo "first training line seen: $seen"
if [ -n "$seen" ]; then
    check "status line shape while training" \
        bash -c '[[ "$1" =~ ^training\ [0-9]+%\ (preparing|trial\ [1-9][0-9]*/[1-9][0-9]*).*elapsed\ [0-9]+:[0-9][0-9]\ budget\ 1:12 ]]' _ "$seen"
    check_eq "no status line says trial 0 or of 0 trials" "" \
        "$(printf '%s' "$all" | grep -E 'trial 0/|/0 ' | sort -u)"
    check_eq "no status line says 0% once trials are done" "" \
        "$(printf '%s' "$all" | grep -E '^training 0% trial ([2-9]|[1-9][0-9]+)/' | sort -u)"
fi
check "log tells the run" grep -q 'training version 1 on dataset "train"' "$M/log"
check "log says succeeded" grep -q 'succeeded' "$M/log"
check "log says where the time went" grep -Eq 'time by stage: features [0-9.]+ CPU s, [0-9.]+ s.*; in all [0-9.]+ CPU s' "$M/log"
# one line per stage, each with CPU and wall seconds, in the order they ran
check "log times each feature pass" grep -Eq 'features [a-z0-9-]+@[0-9]+: [0-9]+ images \([0-9]+ from cache\) in [0-9.]+ CPU s, [0-9.]+ s \(decoding and resizing [0-9.]+ CPU s\)' "$M/log"
check "log has a features stage line" grep -Eq 'stage features: [0-9.]+ CPU s, [0-9.]+ s$' "$M/log"
check "log has a decode+resize line" grep -Eq 'stage decode\+resize: [0-9.]+ CPU s' "$M/log"
check "log has a saving stage line" grep -Eq 'stage saving: [0-9.]+ CPU s, [0-9.]+ s$' "$M/log"
check_eq "stage lines in the order the stages ran" "features decode+resize saving" \
    "$(grep -oE 'stage (features|decode\+resize|saving):' "$M/log" | cut -d' ' -f2 | tr -d : | xargs)"
check_eq "status.json succeeded" "succeeded" "$(jq -r .status "$M/status.json")"
check "generated files are read-only" test ! -w "$M/status"
check_err "status cannot be written" "Permission denied" cp "$SRC/one.png" "$M/status"

# evaluation.json
check "evaluation.json is JSON" jq -e . "$M/evaluation.json" >/dev/null
top1=$(jq -r .accuracyTop1 "$M/evaluation.json")
check "accuracyTop1 is high on easy categories ($top1)" \
    python3 -c "import sys; sys.exit(0 if float('$top1') >= 0.8 else 1)"
for k in accuracyTop5 averagePrecision calibrationECE tagPerformance confusionMatrix; do
    check "evaluation.json has $k" jq -e "has(\"$k\")" "$M/evaluation.json" >/dev/null
done
check "tagPerformance per tag" jq -e '.tagPerformance.disc.accuracy >= 0' "$M/evaluation.json" >/dev/null

# predict one image: listed as soon as cp returns, read waits for the answer
check "predict/ appears" test -d "$M/predict"
cp "$SRC/one.png" "$M/predict/one.png"
check "one.png.json listed right after cp" test -e "$M/predict/one.png.json"
r=$(cat "$M/predict/one.png.json")
check_eq "analyze shape: modelVersion names the model and its version" "m/v1" "$(jq -r .modelVersion <<<"$r")"
check "analyze shape: the keys Azure returned, nothing of the older preview shape" \
    jqe '(keys == ["customModelResult", "metadata", "modelVersion"]) and (.customModelResult | keys == ["tagsResult"])' <<<"$r"
check_eq "analyze shape: width" "96" "$(jq -r .metadata.width <<<"$r")"
check_eq "best tag first" "stripes" "$(jq -r '.customModelResult.tagsResult.values[0].name' <<<"$r")"
check_eq "all categories scored" "3" "$(jq -r '.customModelResult.tagsResult.values | length' <<<"$r")"
check "sorted best first" jq -e '.customModelResult.tagsResult.values | (.[0].confidence >= .[1].confidence and .[1].confidence >= .[2].confidence)' <<<"$r"
check "confidences sum to 1" jq -e '[.customModelResult.tagsResult.values[].confidence] | add | . > 0.9999 and . < 1.0001' <<<"$r"
check "result is read-only" test ! -w "$M/predict/one.png.json"

# unusable images get Azure's error shape
cp "$SRC/text.png" "$M/predict/text.png"
check_eq "not an image" "InvalidImageFormat" "$(jq -r .error.code "$M/predict/text.png.json")"
cp "$SRC/tiny.png" "$M/predict/tiny.png"
check_eq "too small" "InvalidImageSize" "$(jq -r .error.code "$M/predict/tiny.png.json")"
# one table of image limits (common/imglimits.h): predict/ refuses what a
# dataset refuses, with the message built from the table
cp "$SRC/edge50.png" "$SRC/edge51.png" "$M/predict/"
check_eq "50x50: refused, as in a dataset" "InvalidImageSize" "$(jq -r .error.code "$M/predict/edge50.png.json")"
check "50x50: the message gives the table's sides" \
    grep -q "width and height over 50 and at most 10240 pixels" "$M/predict/edge50.png.json"
check "51x51: predicted" jq -e '.customModelResult.tagsResult.values | length == 3' "$M/predict/edge51.png.json"
check_eq "the message names the image as the user sees it" "1" \
    "$(jq -r .error.message "$M/predict/text.png.json" | grep -c -F "'predict/text.png'")"
check "no store path in any predict/*.json" sh -c "! grep -l -F '$STORE' '$M'/predict/*.json"

# many at once
t0=$(date +%s.%N)
cp -r "$SRC/many" "$M/predict/"
n=$(ls "$M/predict/many" | grep -c '\.png\.json$')
check_eq "cp -r: every image has its .json listed" "24" "$n"
right=0
for f in "$SRC"/many/*.png; do
    b=$(basename "$f")
    want=${b%%_*}
    got=$(jq -r '.customModelResult.tagsResult.values[0].name' "$M/predict/many/$b.json")
    [ "$got" == "$want" ] && right=$((right + 1))
done
t1=$(date +%s.%N)
echo "cp -r + read of 24 predictions: $(python3 -c "print(round($t1 - $t0, 2))") s"
check "cp -r predictions are right ($right/24)" test "$right" -ge 20
rm "$M/predict/one.png"
check "the result of a removed image can be deleted" rm "$M/predict/one.png.json"
check "result gone" test ! -e "$M/predict/one.png.json"
cp "$SRC/one.png" "$M/predict/x.png"
cat "$M/predict/x.png.json" >/dev/null
check "rm predict/* removes images and results" rm "$M/predict/x.png" "$M/predict/x.png.json"
# names predict/ cannot take
check_err "an image named like a result (w.json) is refused" "Invalid argument" \
    cp "$SRC/one.png" "$M/predict/w.json"
check_err "so is X.boxes.jpg" "Invalid argument" cp "$SRC/one.png" "$M/predict/w.boxes.jpg"
check "the log says why" grep -q "predict/w.json refused: names ending in .json or .boxes.jpg" "$M/log"
cp "$SRC/one.png" "$M/predict/ok.png"
check_eq "nor by a rename" "Invalid argument" "$(rename_err "$M/predict/ok.png" "$M/predict/ok.json")"
check "the image stays" test -f "$M/predict/ok.png"
rm -f "$M/predict/ok.png" "$M/predict/ok.png.json"
long=$(printf 'p%.0s' $(seq 242)).png
check_err "a name whose results cannot have a name (246 bytes)" "File name too long" \
    cp "$SRC/one.png" "$M/predict/$long"
long=$(printf 'p%.0s' $(seq 241)).png
cp "$SRC/one.png" "$M/predict/$long"
check "245 bytes: predicted, the result readable" \
    jqe '.customModelResult.tagsResult.values[0].name' "$M/predict/$long.json"
rm -f "$M/predict/$long" "$M/predict/$long.json"

# evaluations/
check "mkdir evaluations/test" mkdir "$M/evaluations/test"
check "evaluation on test succeeds" wait_status "$M/evaluations/test/status" succeeded 300
check_eq "metrics.json top-1 matches evaluation.json" "$top1" "$(jq -r .accuracyTop1 "$M/evaluations/test/metrics.json")"
check_eq "predictions.json has one result per image" "9" "$(jq length "$M/evaluations/test/predictions.json")"
check "predictions.json in COCO results format" \
    jq -e '.[0] | has("image_id") and has("category_id") and has("score") and .bbox == [0, 0, 96, 96]' "$M/evaluations/test/predictions.json"
mkdir "$M/evaluations/nope"
check "evaluation of a missing dataset" wait_status "$M/evaluations/nope/status" "failed: datasetNotFound" 30
mkdir "$M/evaluations/det"
check "evaluation on a detection dataset" wait_status "$M/evaluations/det/status" "failed: incorrectModelKind" 30
mkdir "$MNT/datasets/empty"
mkdir "$M/evaluations/empty"
check "evaluation on an empty dataset" wait_status "$M/evaluations/empty/status" "failed: dataset" 30
check "rm -r of an evaluation" rm -r "$M/evaluations/nope"
check "evaluation gone" test ! -e "$M/evaluations/nope"

# export and import
check "export: cp model.safetensors out" cp "$M/model.safetensors" "$SRC/exported.safetensors"
check "export is a safetensors file" python3 -c "
import json, struct, sys
b = open('$SRC/exported.safetensors', 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
sys.exit(0 if h['__metadata__']['kind'] == 'classifier' else 1)"
check_err "model.safetensors of a trained model is read-only" "Permission denied" \
    cp "$SRC/exported.safetensors" "$M/model.safetensors"
mkdir "$MNT/models/imp"
check "import into an empty model" cp "$SRC/exported.safetensors" "$MNT/models/imp/model.safetensors"
check_eq "imported model is succeeded" "succeeded" "$(cat "$MNT/models/imp/status")"
cp "$SRC/one.png" "$MNT/models/imp/predict/one.png"
cp "$SRC/one.png" "$M/predict/again.png"
check_eq "imported model scores the same" \
    "$(jq -c .customModelResult "$M/predict/again.png.json")" \
    "$(jq -c .customModelResult "$MNT/models/imp/predict/one.png.json")"
check "mv renames a model" mv "$MNT/models/imp" "$MNT/models/imp2"
cp "$SRC/one.png" "$MNT/models/imp2/predict/two.png"
check_eq "renamed model predicts" "stripes" \
    "$(jq -r '.customModelResult.tagsResult.values[0].name' "$MNT/models/imp2/predict/two.png.json")"
check_eq "renamed model names itself (an imported model)" "imp2/imported" "$(jq -r .modelVersion "$MNT/models/imp2/predict/two.png.json")"

mkdir "$MNT/models/bad"
head -c 3000 /dev/urandom >"$SRC/garbage.safetensors"
check_err "malformed model refused" "Invalid argument" \
    cp "$SRC/garbage.safetensors" "$MNT/models/bad/model.safetensors"
check "status says why" grep -q "^failed: invalidModel: model.safetensors" "$MNT/models/bad/status"
python3 - "$SRC/exported.safetensors" "$SRC/cut.safetensors" <<'EOF'
import sys
b = open(sys.argv[1], 'rb').read()
open(sys.argv[2], 'wb').write(b[:len(b) // 2])
EOF
check_err "truncated model refused" "Invalid argument" \
    cp "$SRC/cut.safetensors" "$MNT/models/bad/model.safetensors"
check "nothing imported" test ! -e "$MNT/models/bad/model.safetensors"

# everything survives a remount
vfs_umount
vfs_mount
check_eq "status after remount" "succeeded" "$(cat "$M/status")"
cp "$SRC/one.png" "$M/predict/after.png"
check_eq "predicts after remount" "stripes" \
    "$(jq -r '.customModelResult.tagsResult.values[0].name' "$M/predict/after.png.json")"
check "rm -r of a model" rm -r "$MNT/models/imp2"
check "model gone" test ! -e "$MNT/models/imp2"
vfs_umount
vfs_done
