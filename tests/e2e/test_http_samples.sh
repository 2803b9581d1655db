# test_http_samples.sh: the whole Image Analysis 4.0 customization flow
# (issue 11) with Microsoft's own client,
# cognitive-service-vision-model-customization-python-samples 0.0.6 (in a
# venv outside the tree), against a mount with --http: two datasets whose
# COCO files and images are blobs in Azurite (a real Azure Blob server on
# loopback, as test_urls_azurite.sh uses) registered with DatasetClient,
# a model trained with TrainingClient and waited for, evaluated on the
# second dataset with EvaluationClient, and analyze of a file
# (PredictionClient) and of a blob URL, each equal to predict/IMAGE.json
# through the mount for the same image. Skipped when the client or Azurite
# cannot be installed (failed instead with VFS_REQUIRE_AZURE_CLIENTS=1).
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0
command -v curl >/dev/null || { echo "skipped: curl missing"; exit 77; }
skip_or_fail() {
    echo "$1"
    if [ "${VFS_REQUIRE_AZURE_CLIENTS:-0}" = 1 ]; then exit 1; fi
    exit 77
}

PYS=${XDG_CACHE_HOME:-$HOME/.cache}/visionfs/pyiasamples
PKG=cognitive_service_vision_model_customization_python_samples
if ! "$PYS/bin/python3" -c "import $PKG" 2>/dev/null; then
    python3 -m venv "$PYS" &&
        "$PYS/bin/pip" install -q cognitive-service-vision-model-customization-python-samples==0.0.6 || true
fi
"$PYS/bin/python3" -c "import $PKG" 2>/dev/null ||
    skip_or_fail "skipped: cognitive-service-vision-model-customization-python-samples 0.0.6 not installable here"

# Azurite, as test_urls_azurite.sh installs it (outside the repository)
TOOLS=$E2E_DIR/../tools
AZ_VERSION=3.35.0
AZ_DIR=${VFS_AZURITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/visionfs/azurite-$AZ_VERSION}
AZ_BIN=$AZ_DIR/node_modules/.bin/azurite-blob
if [ ! -x "$AZ_BIN" ]; then
    command -v npm >/dev/null || skip_or_fail "skipped: no npm to install azurite"
    mkdir -p "$AZ_DIR"
    timeout 600 npm install --prefix "$AZ_DIR" --no-audit --no-fund --loglevel=error \
        "azurite@$AZ_VERSION" >"$T/npm.log" 2>&1 || skip_or_fail "skipped: npm install azurite failed"
fi
[ -x "$AZ_BIN" ] || skip_or_fail "skipped: no azurite-blob after install"
AZ_PID=
stop_azurite() {
    if [ -n "$AZ_PID" ]; then
        kill "$AZ_PID" 2>/dev/null
        wait "$AZ_PID" 2>/dev/null
        AZ_PID=
    fi
}
trap 'stop_azurite; vfs_cleanup' EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
AZ_PORT=$(free_port)
mkdir -p "$T/azurite"
"$AZ_BIN" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --location "$T/azurite" \
    --disableTelemetry --skipApiVersionCheck >"$T/azurite.log" 2>&1 &
AZ_PID=$!
for i in $(seq 300); do
    grep -q "successfully listens" "$T/azurite.log" 2>/dev/null && break
    kill -0 "$AZ_PID" 2>/dev/null || break
    sleep 0.2
done
grep -q "successfully listens" "$T/azurite.log" || { cat "$T/azurite.log"; echo "azurite did not start"; exit 1; }
E=http://127.0.0.1:$AZ_PORT/devstoreaccount1
AZ="python3 $TOOLS/azblob.py"

# ---- two labelled sets as blobs: images, and COCO files naming them by URL ----
$MK cls "$SRC/train" 6 1
$MK cls "$SRC/test" 3 2
$MK one "$SRC/one.png" stripes 7
check "make the container" $AZ mkcontainer "$E" vision
SAS=$($AZ sas 2)
ok=1
for d in train test; do
    for f in "$SRC/$d"/images/*; do
        $AZ put "$E" vision "$d/$(basename "$f")" "$f" image/png || ok=0
    done
    python3 -c '
import json, os, sys
src, e, d, sas = sys.argv[1:]
c = json.load(open(src))
for im in c["images"]:
    im["absolute_url"] = "%s/vision/%s/%s?%s" % (e, d, os.path.basename(im["file_name"]), sas)
json.dump(c, open(src + ".blob", "w"))' "$SRC/$d/annotations.json" "$E" "$d" "$SAS"
    $AZ put "$E" vision "coco/$d.json" "$SRC/$d/annotations.json.blob" application/json || ok=0
done
$AZ put "$E" vision "one.png" "$SRC/one.png" image/png || ok=0
check "uploaded the images and COCO files" test "$ok" = 1

PORT=$(free_port)
vfs_mount --http "127.0.0.1:$PORT"
KEY=$(cat "$STORE/http-key")

# ---- Microsoft's client, unchanged ----
"$PYS/bin/python3" - "http://127.0.0.1:$PORT" "$KEY" "$E" "$SAS" "$SRC/one.png" "$MNT" \
    >"$T/client.out" 2>&1 <<'PY' || true
import json, os, sys, time
from cognitive_service_vision_model_customization_python_samples import (
    Dataset, DatasetClient, AnnotationKind, TrainingClient, Model, ModelKind, TrainingParameters,
    EvaluationParameters, Evaluation, EvaluationClient, PredictionClient, ResourceType)

ep, key, blob, sas, one, mnt = sys.argv[1:]
rt = ResourceType.MULTI_SERVICE_RESOURCE
ds = DatasetClient(rt, None, ep, key)
for d in ("train", "test"):
    r = ds.register_dataset(Dataset(d, AnnotationKind.MULTICLASS_CLASSIFICATION,
                                    ["%s/vision/coco/%s.json?%s" % (blob, d, sas)]))
    print("ok register", d, r.annotation_kind)
tc = TrainingClient(rt, None, ep, key)
r = tc.train_model(Model("m", TrainingParameters("train", 0.02, ModelKind.GENERIC_IC),
                         EvaluationParameters("test")))
print("ok train_model", r.status)
r = tc.wait_for_training_completion("m", check_wait_in_secs=1)
print("ok" if r.status.value == "succeeded" else "BAD", "trained", r.status.value,
      json.dumps(r.model_performance))
ec = EvaluationClient(rt, None, ep, key)
ec.evaluate(Evaluation("test", "m", "test"))
r = ec.wait_for_completion("test", "m", check_wait_in_secs=1)
print("ok" if r.status.value == "succeeded" else "BAD", "evaluated", r.status.value)
print("PERF", json.dumps(r.model_performance, sort_keys=True))
pc = PredictionClient(rt, None, ep, key)
print("FILE", json.dumps(pc.predict("m", open(one, "rb").read(), content_type="image/png"), sort_keys=True))
# a URL: the client's own request path, with Azure's {"url"} body
url = pc.request_post("imageanalysis:analyze", params={"model-name": "m"},
                      data=json.dumps({"url": "%s/vision/one.png?%s" % (blob, sas)}),
                      content_type="application/json")
print("URL", json.dumps(url, sort_keys=True))
PY
cat "$T/client.out"
check "samples 0.0.6: registered both datasets" test "$(grep -c '^ok register' "$T/client.out")" = 2
check "samples 0.0.6: train_model accepted" grep -q '^ok train_model' "$T/client.out"
check "samples 0.0.6: training succeeded" grep -q '^ok trained' "$T/client.out"
check "samples 0.0.6: evaluation succeeded" grep -q '^ok evaluated' "$T/client.out"
check "datasets fetched from the blobs: ready" wait_status "$MNT/datasets/test/status" ready 5
perf=$(grep '^PERF ' "$T/client.out" | cut -d' ' -f2- | jq -S -c . || true)
check "evaluation: modelPerformance has accuracyTop1" jqe '.accuracyTop1 | type == "number"' <<<"${perf:-null}"
check_eq "evaluation = evaluations/test/metrics.json in the mount" \
    "$(jq -S -c . "$MNT/models/m/evaluations/test/metrics.json" || true)" "$perf"
cp "$SRC/one.png" "$MNT/models/m/predict/one.png"
want=$(jq -S -c . "$MNT/models/m/predict/one.png.json")
check "predict/ answered" jqe '.customModelResult.tagsResult.values | length > 0' <<<"$want"
check_eq "PredictionClient.predict (file) = predict/one.png.json" "$want" \
    "$(grep '^FILE ' "$T/client.out" | cut -d' ' -f2- | jq -S -c . || true)"
check_eq "analyze a blob URL = predict/one.png.json" "$want" \
    "$(grep '^URL ' "$T/client.out" | cut -d' ' -f2- | jq -S -c . || true)"
vfs_done
