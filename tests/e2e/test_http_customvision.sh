# test_http_customvision.sh: Custom Vision Prediction v3.0/v3.1 over HTTP
# (issue 11) with Microsoft's own client, azure-cognitiveservices-vision-
# customvision 3.1.1 (in a venv outside the tree; skipped if it cannot
# install, failed instead when VFS_REQUIRE_AZURE_CLIENTS=1): a classifier
# and a detector trained through the mount answer classify_image,
# classify_image_url, detect_image, detect_image_url and their
# with_no_store variants with the tags and probabilities of
# predict/IMAGE.json for the same image, boxes normalised to 0..1. Also
# Custom Vision's error shape (top-level code and message), the key in
# Prediction-Key, classify on a detector refused, and a slow client that
# never finishes its headers not stopping the others.
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0
need_backbone centernet
command -v curl >/dev/null || { echo "skipped: curl missing"; exit 77; }

PYC=${XDG_CACHE_HOME:-$HOME/.cache}/visionfs/pycustomvision
if [ ! -x "$PYC/bin/python3" ] ||
    ! "$PYC/bin/python3" -c 'import azure.cognitiveservices.vision.customvision.prediction' 2>/dev/null; then
    python3 -m venv "$PYC" &&
        "$PYC/bin/pip" install -q azure-cognitiveservices-vision-customvision==3.1.1 || true
fi
if ! "$PYC/bin/python3" -c 'import azure.cognitiveservices.vision.customvision.prediction' 2>/dev/null; then
    if [ "${VFS_REQUIRE_AZURE_CLIENTS:-0}" = 1 ]; then
        echo "FAIL: azure-cognitiveservices-vision-customvision 3.1.1 could not be installed"
        exit 1
    fi
    echo "skipped: azure-cognitiveservices-vision-customvision 3.1.1 not installable here"
    exit 77
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
PROJECT=0b6c3f2e-8d7a-4e51-9c3b-2f1a5d6e7c80

mkdir -p "$SRC/img"
$MK cls "$SRC/cls" 6 1
$MK one "$SRC/img/stripes.png" stripes 7
python3 "$E2E_DIR/test_detect_mkdata.py" det "$SRC/det" 12 1
python3 "$E2E_DIR/test_detect_mkdata.py" one "$SRC/img/shapes.png" 77 >/dev/null

vfs_mount --http "127.0.0.1:$PORT"
KEY=$(cat "$STORE/http-key")

# ---- both models trained through the mount ----
for d in cls det; do
    mkdir "$MNT/datasets/$d"
    cp -r "$SRC/$d/." "$MNT/datasets/$d/"
done
for d in cls det; do
    check "dataset $d ready" wait_status "$MNT/datasets/$d/status" ready 60
done
mkdir "$MNT/models/cls" "$MNT/models/det"
echo '{"dataset": "cls", "budget_minutes": 1}' >"$SRC/cls.json"
echo '{"dataset": "det", "budget_minutes": 5}' >"$SRC/det.json"
cp "$SRC/cls.json" "$MNT/models/cls/train.json"
cp "$SRC/det.json" "$MNT/models/det/train.json"
check "classifier trained" wait_status "$MNT/models/cls/status" succeeded 300
check "detector trained" wait_status "$MNT/models/det/status" succeeded 600

cp "$SRC/img/stripes.png" "$MNT/models/cls/predict/stripes.png"
cp "$SRC/img/shapes.png" "$MNT/models/det/predict/shapes.png"
wait_jq "$MNT/models/cls/predict/stripes.png.json" '.modelVersion | type' string 60 || true
wait_jq "$MNT/models/det/predict/shapes.png.json" '.modelVersion | type' string 60 || true
# what Custom Vision must answer, from predict/: [tagName, probability, box?]
jq -c '[.customModelResult.tagsResult.values[] | [.name, .confidence]]' \
    "$MNT/models/cls/predict/stripes.png.json" >"$T/want_cls"
jq -c '.metadata as $m | [.customModelResult.objectsResult.values[] | .boundingBox as $b | .tags[] |
    [.name, .confidence, [$b.x / $m.width, $b.y / $m.height, $b.w / $m.width, $b.h / $m.height]]]' \
    "$MNT/models/det/predict/shapes.png.json" >"$T/want_det"
check "predict/ classified the image" jqe 'length > 1' "$T/want_cls"
check "predict/ found objects" jqe 'length > 0' "$T/want_det"

# the images on a local web server (loopback: a transfer that begins on
# loopback may stay there, fetch.h's rule)
WPORT=$(free_port)
python3 -m http.server "$WPORT" --bind 127.0.0.1 --directory "$SRC/img" >/dev/null 2>&1 &
WEB=$!
trap 'kill $WEB 2>/dev/null; vfs_cleanup' EXIT
for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$WPORT/" && break; sleep 0.1; done

# ---- Microsoft's client ----
"$PYC/bin/python3" - "http://127.0.0.1:$PORT" "$KEY" "$PROJECT" "$SRC/img" \
    "http://127.0.0.1:$WPORT" "$T/want_cls" "$T/want_det" >"$T/client.out" 2>&1 <<'PY' || true
import json, sys
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from msrest.authentication import ApiKeyCredentials

ep, key, project, img, web, want_cls, want_det = sys.argv[1:]
c = CustomVisionPredictionClient(ep, ApiKeyCredentials(in_headers={"Prediction-key": key}))
want = {"cls": json.load(open(want_cls)), "det": json.load(open(want_det))}


def same(name, r, w, boxes):
    got = [[p.tag_name, p.probability] for p in r.predictions]
    ok = got == [x[:2] for x in w]
    if boxes:
        for p, x in zip(r.predictions, w):
            b = p.bounding_box
            ok = ok and b is not None and all(
                abs(g - e) < 1e-9 for g, e in zip([b.left, b.top, b.width, b.height], x[2]))
    else:
        ok = ok and all(p.bounding_box is None for p in r.predictions)
    ok = ok and r.project == project and len(r.id) == 36 and len(r.iteration) == 36
    ok = ok and all(len(p.tag_id) == 36 for p in r.predictions) and r.created is not None
    print(("ok" if ok else "BAD"), name, json.dumps(got) if not ok else "")
    return r


a = same("classify_image", c.classify_image(project, "cls", open(img + "/stripes.png", "rb")),
         want["cls"], False)
b = same("classify_image_with_no_store",
         c.classify_image_with_no_store(project, "cls", open(img + "/stripes.png", "rb")),
         want["cls"], False)
print("ok" if a.iteration == b.iteration and a.id != b.id else "BAD", "iteration stable, id per call")
print("ok" if [p.tag_id for p in a.predictions] == [p.tag_id for p in b.predictions] else "BAD",
      "tagId stable")
same("classify_image_url", c.classify_image_url(project, "cls", web + "/stripes.png"), want["cls"], False)
same("classify_image_url_with_no_store",
     c.classify_image_url_with_no_store(project, "cls", web + "/stripes.png"), want["cls"], False)
same("detect_image", c.detect_image(project, "det", open(img + "/shapes.png", "rb")), want["det"], True)
same("detect_image_with_no_store",
     c.detect_image_with_no_store(project, "det", open(img + "/shapes.png", "rb")), want["det"], True)
same("detect_image_url", c.detect_image_url(project, "det", web + "/shapes.png"), want["det"], True)
same("detect_image_url_with_no_store",
     c.detect_image_url_with_no_store(project, "det", web + "/shapes.png"), want["det"], True)


def err(name, f, code):
    try:
        f()
        print("BAD", name, "no error")
    except Exception as e:
        got = getattr(getattr(e, "error", None), "code", None)
        print("ok" if got == code else "BAD", name, type(e).__name__, got, getattr(e, "message", ""))


err("classify on a detector", lambda: c.classify_image(project, "det", open(img + "/shapes.png", "rb")),
    "BadRequestNotSupported")
err("detect on a classifier", lambda: c.detect_image_url(project, "cls", web + "/stripes.png"),
    "BadRequestNotSupported")
err("unknown publishedName", lambda: c.classify_image(project, "nope", open(img + "/stripes.png", "rb")),
    "NotFoundIteration")
err("a URL that answers 404", lambda: c.classify_image_url(project, "cls", web + "/missing.png"),
    "BadRequestImageUrl")
PY
cat "$T/client.out"
for name in classify_image classify_image_with_no_store classify_image_url \
    classify_image_url_with_no_store detect_image detect_image_with_no_store detect_image_url \
    detect_image_url_with_no_store "iteration stable, id per call" "tagId stable" \
    "classify on a detector" "detect on a classifier" "unknown publishedName" "a URL that answers 404"; do
    check "customvision 3.1.1: $name" grep -qE "^ok $name( |\$)" "$T/client.out"
done
grep -q "^ok classify on a detector .*detect/iterations/det" "$T/client.out" &&
    ok "classify on a detector: the message names the detect route" ||
    bad "classify on a detector: the message names the detect route"

# ---- the same over plain HTTP: v3.0, path case, key, error shape ----
P=http://127.0.0.1:$PORT/customvision
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$SRC/img/stripes.png" "$P/v3.0/Prediction/$PROJECT/classify/iterations/cls/image")
check_eq "v3.0 Prediction (octet-stream): 200" "200" "${r##* }"
check_eq "v3.0: the tags and probabilities of predict/" "$(cat "$T/want_cls")" \
    "$(jq -c '[.predictions[] | [.tagName, .probability]]' <<<"${r% *}")"
check_eq "v3.0: the project echoed" "$PROJECT" "$(jq -r .project <<<"${r% *}")"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$SRC/img/stripes.png" "$P/V3.1/prediction/$PROJECT/Classify/Iterations/cls/Image/NoStore")
check_eq "path matched without case: 200" "200" "${r##* }"
r=$(curl -s -D "$T/hdr" -w ' %{http_code}' -H 'Content-Type: application/octet-stream' \
    --data-binary @"$SRC/img/stripes.png" "$P/v3.1/Prediction/$PROJECT/classify/iterations/cls/image")
check_eq "no Prediction-Key: 401" "401" "${r##* }"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: ${KEY}x" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$SRC/img/stripes.png" "$P/v3.1/Prediction/$PROJECT/classify/iterations/cls/image")
check_eq "wrong Prediction-Key: 401" "401" "${r##* }"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -H 'Content-Type: application/octet-stream' \
    --data-binary 'not an image' "$P/v3.1/Prediction/$PROJECT/classify/iterations/cls/image")
check_eq "not an image: 400" "400" "${r##* }"
check_eq "not an image: Custom Vision's shape" "BadRequestImageFormat" "$(jq -r .code <<<"${r% *}")"
check "not an image: a message" jqe '.message | length > 0' <<<"${r% *}"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$SRC/img/stripes.png" "$P/v3.1/Prediction/not-a-guid/classify/iterations/cls/image")
check_eq "projectId not a GUID: 400" "400" "${r##* }"
check "projectId not a GUID: says so" jqe '.message | test("GUID")' <<<"${r% *}"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$SRC/img/stripes.png" "$P/v3.1/Prediction/$PROJECT/classify/iterations/..%2F..%2Fx/image")
check "publishedName with a traversal refused (${r##* })" test "${r##* }" = 400 -o "${r##* }" = 404
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" "$P/v3.1/Prediction/$PROJECT/classify/iterations/cls/image")
check_eq "GET: 405" "405" "${r##* }"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -X POST "$P/v3.1/Prediction/$PROJECT/segment/iterations/cls/image")
check_eq "unknown route: 404" "404" "${r##* }"
check_eq "unknown route: Custom Vision's shape" "NotFound" "$(jq -r .code <<<"${r% *}")"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -H 'Content-Type: application/json' \
    --data-binary '{"Url": ' "$P/v3.1/Prediction/$PROJECT/classify/iterations/cls/url")
check_eq "malformed JSON to /url: 400" "400" "${r##* }"
check_eq "malformed JSON: Custom Vision's shape" "BadRequest" "$(jq -r .code <<<"${r% *}")"
head -c 20971521 /dev/zero >"$T/huge.bin"
r=$(curl -s -w ' %{http_code}' -H "Prediction-Key: $KEY" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/huge.bin" "$P/v3.1/Prediction/$PROJECT/classify/iterations/cls/image")
check_eq "image over 20 MB: 400" "400" "${r##* }"
check_eq "image over 20 MB: BadRequestImageSizeBytes" "BadRequestImageSizeBytes" "$(jq -r .code <<<"${r% *}")"

# ---- slow clients: headers byte by byte, never finished; more of them
# than the server has threads (4, or twice the cores) ----
python3 -c '
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(24)]
for b in b"POST /customvision/v3.1/Prediction/x/classify/iterations/cls/image HTTP/1.1\r\nHost: x\r\nPrediction-Key: ":
    for s in socks:
        s.send(bytes([b]))
    time.sleep(0.05)
time.sleep(30)' "$PORT" &
SLOW=$!
sleep 1
t0=$(date +%s%N)
served=0
for i in $(seq 5); do
    r=$(curl -s -m 10 -o /dev/null -w "%{http_code}" -H "Prediction-Key: $KEY" -H "Content-Type: application/octet-stream" \
        --data-binary @"$SRC/img/stripes.png" "$P/v3.1/Prediction/$PROJECT/classify/iterations/cls/image")
    [ "$r" = 200 ] && served=$((served + 1))
done
t1=$(date +%s%N)
check "24 slow clients still sending (their process alive)" kill -0 $SLOW
check_eq "24 slow clients still sending: 5 other calls served" "5" "$served"
ms=$(((t1 - t0) / 1000000))
check "and promptly ($ms ms for 5)" test "$ms" -lt 10000
kill $SLOW 2>/dev/null || true
wait $SLOW 2>/dev/null || true

vfs_done
