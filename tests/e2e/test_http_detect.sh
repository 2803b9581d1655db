# test_http_detect.sh: a detector trained over HTTP (Azure's body with
# "GenericDetector", the spelling of Microsoft's irisml tasks) answers
# analyze with objectsResult, exactly what predict/IMAGE.json holds for the
# same image (one function makes both answers).
source "$(dirname "$0")/lib.sh"

need_backbone centernet
command -v curl >/dev/null || { echo "skipped: curl missing"; exit 77; }

DMK="python3 $E2E_DIR/test_detect_mkdata.py"
$DMK det "$SRC/train" 12 1
$DMK one "$SRC/one.png" 77 >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U=http://127.0.0.1:$PORT/computervision
V=api-version=2023-02-01-preview

vfs_mount --http "$PORT"
KEY=$(cat "$STORE/http-key")
mkdir "$MNT/datasets/train"
cp -r "$SRC/train/." "$MNT/datasets/train/"
check "dataset ready" wait_status "$MNT/datasets/train/status" ready 60

code=$(curl -s -o "$T/put" -w '%{http_code}' -X PUT -H "Ocp-Apim-Subscription-Key: $KEY" \
    -H 'Content-Type: application/json' "$U/models/det?$V" \
    --data-binary '{"trainingParameters": {"trainingDatasetName": "train", "timeBudgetInHours": 0.08, "modelKind": "GenericDetector"}}')
check_eq "PUT detector: 201" "201" "$code"
check_eq "modelKind spelled as Azure's docs" "Generic-Detector" "$(jq -r .trainingParameters.modelKind "$T/put")"
s=""
for i in $(seq 2700); do
    s=$(curl -s -H "Ocp-Apim-Subscription-Key: $KEY" "$U/models/det?$V" | jq -r .status)
    [[ "$s" == succeeded || "$s" == failed ]] && break
    sleep 0.2
done
check_eq "detector succeeded" "succeeded" "$s"
curl -s -H "Ocp-Apim-Subscription-Key: $KEY" "$U/models/det?$V" >"$T/get"
check "modelPerformance has meanAveragePrecision50" jqe '.modelPerformance.meanAveragePrecision50 | type == "number"' "$T/get"

cp "$SRC/one.png" "$MNT/models/det/predict/one.png"
want=$(jq -S . "$MNT/models/det/predict/one.png.json")
check "predict/ found objects" jqe '.customModelResult.objectsResult.values | length > 0' <<<"$want"
got=$(curl -s -H "Ocp-Apim-Subscription-Key: $KEY" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$SRC/one.png" "$U/imageanalysis:analyze?model-name=det&$V&features=" | jq -S .)
check_eq "analyze = predict/one.png.json (objectsResult)" "$want" "$got"
check "boxes are integer pixels, w and h at least 1" \
    jqe '[.customModelResult.objectsResult.values[].boundingBox | (.x, .y, .w, .h) | (. == floor)] | all' <<<"$got"
vfs_done
