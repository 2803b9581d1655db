# test_urls_azurite.sh: a dataset whose images live in Azure Blob storage,
# served by a real Azure Blob server on loopback (Azurite, from npm).
# Images are uploaded through the Blob REST API with Shared Key signing
# (tests/tools/azblob.py, the documented development account); the COCO file
# names them by absolute_url/coco_url with an account SAS token; only the
# COCO file is copied in and the images arrive by themselves. Also: a wrong
# SAS is reported per image with Azure's error code, Azure's dataset.json
# registration body with two annotation blobs, no SAS signature in status,
# status.json or logs, and a remount downloads nothing again.
#
# Azurite is installed with npm into VFS_AZURITE_DIR (default
# ~/.cache/visionfs/azurite-VERSION, outside the repository) when it is not
# there. The version is the newest whose engines.node accepts Debian 12's own
# nodejs 18 (3.35.0 declares node >= 10; 3.36.0 wants >= 21, 3.37.0 >= 22).
# Without it (and no npm registry) the test is skipped, unless
# VFS_REQUIRE_AZURITE=1.
source "$(dirname "$0")/lib.sh"

TOOLS=$E2E_DIR/../tools
AZ_VERSION=3.35.0
AZ_DIR=${VFS_AZURITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/visionfs/azurite-$AZ_VERSION}
AZ_BIN=$AZ_DIR/node_modules/.bin/azurite-blob
skip_or_fail() {
    echo "$1"
    if [ "${VFS_REQUIRE_AZURITE:-0}" = 1 ]; then exit 1; fi
    exit 77
}
if [ ! -x "$AZ_BIN" ]; then
    command -v npm >/dev/null || skip_or_fail "skipped: no npm to install azurite"
    mkdir -p "$AZ_DIR"
    echo "installing azurite into $AZ_DIR"
    timeout 600 npm install --prefix "$AZ_DIR" --no-audit --no-fund --loglevel=error \
        "azurite@$AZ_VERSION" >"$T/npm.log" 2>&1 || { tail -5 "$T/npm.log"; skip_or_fail "skipped: npm install azurite failed"; }
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

AZ_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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

# ---- upload the images through the Blob REST API (Shared Key) ----
check "make the container" $AZ mkcontainer "$E" train
IMGS=$SRC/imgs
mkdir -p "$IMGS"
for i in 1 2 3; do
    $MKIMG "$IMGS/cat$i.png" 64 60 "$i"
    $MKIMG "$IMGS/dog$i.bmp" 72 56 "$((i + 10))"
done
ok=1
for i in 1 2 3; do
    $AZ put "$E" train "cats/cat $i.png" "$IMGS/cat$i.png" image/png || ok=0
    $AZ put "$E" train "dogs/dog$i.bmp" "$IMGS/dog$i.bmp" image/bmp || ok=0
done
check "upload 6 images" test "$ok" = 1
SAS=$($AZ sas 2)
SIG=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.parse_qs(sys.argv[1])["sig"][0])' "$SAS")
check "a blob is private without the SAS" test "$(curl -s -o /dev/null -w '%{http_code}' "$E/train/cats/cat%201.png")" != 200
check "a blob reads with the SAS" cmp <(curl -s "$E/train/cats/cat%201.png?$SAS") "$IMGS/cat1.png"

# coco_json OUT SAS IDS...: a COCO file naming the blobs by url
coco_json() {
    python3 -c '
import json, sys
out, e, sas = sys.argv[1], sys.argv[2], sys.argv[3]
images, anns = [], []
for i in map(int, sys.argv[4:]):
    if i <= 3:
        im = {"id": i, "file_name": "images/cat%d.png" % i, "width": 64, "height": 60,
              "absolute_url": "%s/train/cats/cat%%20%d.png?%s" % (e, i, sas)}
        cat = 1
    else:
        k = i - 3
        im = {"id": i, "width": 72, "height": 56,
              "coco_url": "%s/train/dogs/dog%d.bmp?%s" % (e, k, sas)}
        cat = 2
    images.append(im)
    anns.append({"id": 100 + i, "image_id": i, "category_id": cat})
json.dump({"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}, open(out, "w"))
' "$@"
}

vfs_mount

# ---- only the COCO file: the images come from blob storage ----
coco_json "$SRC/coco.json" "$E" "$SAS" 1 2 3 4 5 6
mkdir "$MNT/datasets/blobs"
check "cp only the COCO file" cp "$SRC/coco.json" "$MNT/datasets/blobs/"
check "blobs: ready" wait_status "$MNT/datasets/blobs/status" "ready: 6 images, 2 categories, 0 boxes (classification)" 60
S=$MNT/datasets/blobs/status.json
check_eq "blobs: all found" "6" "$(jq .imagesFound "$S")"
check "no SAS signature in status" bash -c "! grep -qF -- '$SIG' '$MNT/datasets/blobs/status'"
check "no SAS signature in status.json" bash -c "! grep -qF -- '$SIG' '$S'"
check "no SAS signature in the daemon log" bash -c "! grep -qF -- '$SIG' '$T/daemon.log'"
FETCHED=$STORE/datasets/blobs/.vfs-fetched
for i in 1 2 3; do
    f=$(ls "$FETCHED" | grep "cat.*$i\.png\$" | head -1 || true)
    check "cat $i arrived whole" cmp "$IMGS/cat$i.png" "$FETCHED/$f"
done
check_eq "six files fetched" "6" "$(ls "$FETCHED" | wc -l)"
snap1=$(cd "$FETCHED" && stat -c '%n %i %Y' * | sort)

# ---- a wrong SAS: reported per image with Azure's error code ----
coco_json "$SRC/bad.json" "$E" "$($AZ badsas 2)" 1 2 4 5
mkdir "$MNT/datasets/badsas"
check "cp a COCO file with a wrong SAS" cp "$SRC/bad.json" "$MNT/datasets/badsas/"
check "wrong SAS: invalid" wait_status "$MNT/datasets/badsas/status" "invalid: DatasetInvalidAnnotationUri" 60
# "invalid" shows with the first failure; the other downloads finish after
check "wrong SAS: every image failed" wait_jq "$MNT/datasets/badsas/status.json" .imagesFailed 4 60
check "wrong SAS: http 403 with Azure's code" jqe '[.errors[] | select(.message | test("failed: http 403 AuthorizationFailure"))] | length == 4' "$MNT/datasets/badsas/status.json"
check "wrong SAS: the url is shown without its query" jqe --arg e "$E" '[.errors[] | select(.message | contains($e + "/train/cats/cat%201.png'"'"'"))] | length == 1' "$MNT/datasets/badsas/status.json"

# ---- Azure's dataset.json: two annotation files in blob storage ----
coco_json "$SRC/part1.json" "$E" "$SAS" 1 2 4
coco_json "$SRC/part2.json" "$E" "$SAS" 3 5 6
$AZ put "$E" train "coco/part1.json" "$SRC/part1.json" application/json
$AZ put "$E" train "coco/part2.json" "$SRC/part2.json" application/json
printf '{"annotationKind": "imageClassification", "annotationFileUris": ["%s", "%s"]}\n' \
    "$E/train/coco/part1.json?$SAS" "$E/train/coco/part2.json?$SAS" >"$SRC/dataset.json"
mkdir "$MNT/datasets/registered"
check "cp dataset.json" cp "$SRC/dataset.json" "$MNT/datasets/registered/"
check "dataset.json: ready" wait_status "$MNT/datasets/registered/status" "ready: 6 images, 2 categories" 60
check "dataset.json: merged annotations.json" jqe '(.images | length) == 6 and .task == "imageClassification"' "$MNT/datasets/registered/annotations.json"
check "dataset.json: no SAS signature in status.json" bash -c "! grep -qF -- '$SIG' '$MNT/datasets/registered/status.json'"

# ---- remount: everything is there, nothing is downloaded again ----
vfs_umount
vfs_mount
check "remount: blobs ready" wait_status "$MNT/datasets/blobs/status" "ready: 6 images" 30
check "remount: registered ready" wait_status "$MNT/datasets/registered/status" "ready: 6 images" 30
check_eq "remount: fetched files untouched" "$snap1" "$(cd "$FETCHED" && stat -c '%n %i %Y' * | sort)"
check "no SAS signature in the store log" bash -c "! grep -qF -- '$SIG' '$T/daemon.log'"

vfs_done
