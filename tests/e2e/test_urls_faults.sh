# test_urls_faults.sh: images and annotation files by URL through the mount,
# against a loopback server of our own that injects faults
# (tests/tools/faultserver.py): 500 then success (retried), a reset, a
# redirect, a stall (timeout), a 404, a 30 MB body (size cap), a text body
# (not an image), a redirect loop, a malformed URL. Checks the per-image
# problems in status.json, that SAS-like query strings never show, that a
# fixed COCO file and a remount do not download again, that kill -9 in the
# middle of downloads loses nothing and resumes, that unmount cancels
# running transfers at once, that the mount answers while hundreds of
# images download, and Azure's dataset.json (two files merged).
source "$(dirname "$0")/lib.sh"

TOOLS=$E2E_DIR/../tools
WWW=$SRC/www
mkdir -p "$WWW"
SRV_PID=
stop_server() {
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
        SRV_PID=
    fi
}
trap 'stop_server; vfs_cleanup' EXIT

python3 "$TOOLS/faultserver.py" "$WWW" "$T/port" "$T/requests.log" &
SRV_PID=$!
for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")
U=http://127.0.0.1:$PORT
SECRET=SECRETSIG0123456789
reqs() { grep -c -- "$1" "$T/requests.log" || true; }
# image requests so far (a failed dataset.json is asked again at each mount)
nreq() { grep -vc gone.json "$T/requests.log" || true; }
# wait_fetched STATUS_JSON [SECONDS]: until no download is pending
wait_fetched() {
    local n=$((${2:-30} * 10))
    while [ $n -gt 0 ]; do
        if jq -e '.imagesFetching == 0 and .images > 0' "$1" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
        n=$((n - 1))
    done
    echo "downloads still pending in $1: $(jq -c '{imagesFetching, imagesFound, imagesFailed}' "$1")"
    return 1
}

for i in 1 2 3 4 5 6; do $MKIMG "$WWW/ok$i.png" 64 60 "$i"; done
for i in $(seq 0 299); do cp "$WWW/ok$((i % 6 + 1)).png" "$WWW/m$i.png"; done

# mkurlcoco OUT KIND < "id file_name url category" lines (file_name "-" = none)
mkurlcoco() {
    python3 -c '
import json, sys
images, anns, cats = [], [], {}
for line in sys.stdin:
    if not line.strip():
        continue
    i, name, url, cat = line.split()
    im = {"id": int(i), "width": 64, "height": 60, "absolute_url": url}
    if name != "-":
        im["file_name"] = name
    images.append(im)
    cats.setdefault(cat, len(cats) + 1)
    anns.append({"id": int(i), "image_id": int(i), "category_id": cats[cat]})
json.dump({"images": images, "annotations": anns,
           "categories": [{"id": v, "name": k} for k, v in cats.items()]}, open(sys.argv[1], "w"))
' "$1"
}

export VFS_FETCH_STALL_TIMEOUT=1 VFS_FETCH_RETRIES=1 VFS_FETCH_BACKOFF_MS=50
export VFS_FETCH_CONNECT_TIMEOUT=2
vfs_mount

# ---- every fault in one dataset ----
mkurlcoco "$SRC/faults.json" <<EOF
1 ok1.png $U/f/ok1.png?sv=2020-12-06&sig=$SECRET a
2 ok2.png $U/flaky/ok2.png?sig=$SECRET a
3 ok3.png $U/reset/ok3.png b
4 ok4.png $U/redir/ok4.png b
5 stall.png $U/stall/stall.png?sig=$SECRET a
6 nf.png $U/missing/nf.png?sig=$SECRET b
7 big.png $U/big/30?sig=$SECRET a
8 text.png $U/text/t.png b
9 loop.png $U/loop/0 a
10 - htp:/broken%20url b
11 - $U/f/ok5.png?sig=$SECRET b
EOF
mkdir "$MNT/datasets/faults"
check "cp only the COCO file" cp "$SRC/faults.json" "$MNT/datasets/faults/"
check "downloads end" wait_fetched "$MNT/datasets/faults/status.json" 60
check "then invalid" wait_status "$MNT/datasets/faults/status" "invalid: DatasetInvalidAnnotationUri" 5
S=$MNT/datasets/faults/status.json
err_of() { jq -r --argjson id "$1" '[.errors[] | select(.id == $id) | .message] | join(" | ")' "$S"; }
check_eq "found: the good ones" "5" "$(jq .imagesFound "$S")"
check_eq "failed downloads" "5" "$(jq .imagesFailed "$S")"
check "500 then success: fetched, asked twice" test "$(reqs 'GET /flaky/ok2.png')" -eq 2
check "404 reported with its status" grep -q "download of 'http://127.0.0.1:$PORT/missing/nf.png' failed: http 404" <<<"$(err_of 6)"
check "404 not retried" test "$(reqs 'GET /missing/nf.png')" -eq 1
check "stall: timeout" grep -q "timed out: no data for 1 s" <<<"$(err_of 5)"
check "30 MB body: size cap" grep -q "larger than 20 MB" <<<"$(err_of 7)"
check "text body: not an image" grep -q "not an image (content-type text/plain)" <<<"$(err_of 8)"
check "redirect loop" grep -q "too many redirects" <<<"$(err_of 9)"
check_eq "malformed url: DatasetInvalidAnnotationUri" "DatasetInvalidAnnotationUri images[9].absolute_url" \
    "$(jq -r '.errors[] | select(.id == 10) | "\(.code) \(.path)"' "$S")"
check "failures are errors with the image id" jqe '[.errors[] | select(.id == 6 and .code == "DatasetInvalidAnnotationUri")] | length == 1' "$S"
check "no query string in status" bash -c "! grep -q '$SECRET' '$MNT/datasets/faults/status'"
check "no query string in status.json" bash -c "! grep -q '$SECRET' '$S'"
check "no query string in the log" bash -c "! grep -q '$SECRET' '$T/daemon.log'"
check "no sig= anywhere in status.json" bash -c "! grep -q 'sig=' '$S'"
F=$(ls "$STORE/datasets/faults/.vfs-fetched/" | grep 'ok1.png$' || true)
check "the fetched image is the served one" cmp "$WWW/ok1.png" "$STORE/datasets/faults/.vfs-fetched/$F"
check "fetched files are not shown in the mount" bash -c "! ls -A '$MNT/datasets/faults' | grep -q vfs"
check_eq "nothing fetched for failures" "5" "$(ls "$STORE/datasets/faults/.vfs-fetched/" | wc -l)"

# ---- the fixed file: only good urls; nothing is downloaded again ----
before=$(nreq)
grep -E '^(1|2|3|4|11) ' <<EOF | mkurlcoco "$SRC/fixed.json"
1 ok1.png $U/f/ok1.png?sv=2020-12-06&sig=$SECRET a
2 ok2.png $U/flaky/ok2.png?sig=$SECRET a
3 ok3.png $U/reset/ok3.png b
4 ok4.png $U/redir/ok4.png b
11 - $U/f/ok5.png?sig=$SECRET b
EOF
check "cp the fixed COCO file" cp "$SRC/fixed.json" "$MNT/datasets/faults/faults.json"
check "fixed: ready" wait_status "$MNT/datasets/faults/status" "ready: 5 images, 2 categories" 20
check_eq "fixed: no new requests" "$before" "$(nreq)"

# ---- dataset.json: two annotation files by url, merged ----
grep -E '^(1|2) ' <<EOF | mkurlcoco "$WWW/part1.json"
1 cat1.png $U/f/ok1.png a
2 cat2.png $U/f/ok2.png a
EOF
grep -E '^(3|4) ' <<EOF | mkurlcoco "$WWW/part2.json"
3 dog1.png $U/delay/ok3.png b
4 dog2.png $U/f/ok4.png b
EOF
mkdir "$MNT/datasets/azure"
printf '{"annotationKind": "imageClassification", "annotationFileUris": ["%s", "%s"]}\n' \
    "$U/f/part1.json?sig=$SECRET" "$U/f/part2.json?sig=$SECRET" >"$SRC/dataset.json"
check "cp dataset.json" cp "$SRC/dataset.json" "$MNT/datasets/azure/"
check "dataset.json: ready" wait_status "$MNT/datasets/azure/status" "ready: 4 images, 2 categories, 0 boxes (classification)" 30
check "dataset.json: annotations.json written" test -f "$MNT/datasets/azure/annotations.json"
check "dataset.json: merged file has both parts" jqe '(.images | length) == 4 and (.categories | length) == 2' "$MNT/datasets/azure/annotations.json"
check "dataset.json: kind from annotationKind" jqe '.task == "imageClassification"' "$MNT/datasets/azure/annotations.json"
check "dataset.json: no query in status.json" bash -c "! grep -q '$SECRET' '$MNT/datasets/azure/status.json'"
printf '{"annotationKind": "imageClassification", "annotationFileUris": ["ftp://h/a.json"]}\n' >"$SRC/bad.json"
mkdir "$MNT/datasets/azbad"
check_err "dataset.json with an ftp url: EINVAL" "Invalid argument" cp "$SRC/bad.json" "$MNT/datasets/azbad/dataset.json"
printf '{"annotationKind": "imageObjectDetection", "annotationFileUris": ["%s"]}\n' \
    "$U/missing/gone.json?sig=$SECRET" >"$SRC/gone.json"
check "cp dataset.json naming a 404" cp "$SRC/gone.json" "$MNT/datasets/azbad/dataset.json"
check "dataset.json 404: invalid" wait_status "$MNT/datasets/azbad/status" "invalid: DatasetInvalidAnnotationUri" 20
check "dataset.json 404: says http 404" grep -q "http 404" "$MNT/datasets/azbad/status"
check "dataset.json 404: no query" bash -c "! grep -q '$SECRET' '$MNT/datasets/azbad/status.json'"

# ---- the mount answers while hundreds of images download ----
for i in $(seq 0 299); do echo "$((i + 1)) m$i.png $U/delay/m$i.png c$((i % 3))"; done | mkurlcoco "$SRC/many.json"
mkdir "$MNT/datasets/many"
cp "$SRC/many.json" "$MNT/datasets/many/"
check "many: fetching shows progress" wait_status "$MNT/datasets/many/status" "fetching: " 10
# the median catches a lock held across the downloads (most samples wait); the slowest, only a
# hang, with room for a loaded CI machine (one sample took 1011 ms there beside a training run)
times=()
for i in $(seq 20); do
    t0=$(date +%s%N)
    ls "$MNT/datasets" >/dev/null
    cat "$MNT/datasets/many/status" >/dev/null
    times+=($((($(date +%s%N) - t0) / 1000000)))
    sleep 0.05
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(sed -n 10p <<<"$sorted")
worst=$(tail -n 1 <<<"$sorted")
echo "ls + cat while downloading: median $median ms, slowest $worst ms"
check "mount stays responsive (median ls+cat under 1 s)" test "$median" -lt 1000
check "mount never hangs (slowest ls+cat under 5 s)" test "$worst" -lt 5000
check "many: ready" wait_status "$MNT/datasets/many/status" "ready: 300 images, 3 categories" 60

# ---- remount: nothing is downloaded again ----
before=$(nreq)
vfs_umount
vfs_mount
check "remount: faults ready" wait_status "$MNT/datasets/faults/status" "ready: 5 images" 20
check "remount: many ready" wait_status "$MNT/datasets/many/status" "ready: 300 images" 20
check "remount: azure ready" wait_status "$MNT/datasets/azure/status" "ready: 4 images" 20
check_eq "remount: no new requests" "$before" "$(nreq)"

# ---- kill -9 in the middle of downloads: nothing half-written, resumes ----
for i in 1 2 3 4; do echo "$i s$i.png $U/slow/ok$i.png c$((i % 2))"; done | mkurlcoco "$SRC/slow.json"
mkdir "$MNT/datasets/crash"
cp "$SRC/slow.json" "$MNT/datasets/crash/"
check "crash: downloads running" wait_status "$MNT/datasets/crash/status" "fetching: 0/4" 10
sleep 1
vfs_kill9
check "crash: no half-written image in the dataset" test ! -e "$STORE/datasets/crash/.vfs-fetched" -o -z "$(ls -A "$STORE/datasets/crash/.vfs-fetched" 2>/dev/null)"
vfs_mount
check "crash: resumed to ready after remount" wait_status "$MNT/datasets/crash/status" "ready: 4 images" 30
for i in 1 2 3 4; do
    f=$(ls "$STORE/datasets/crash/.vfs-fetched/" | grep "s$i.png\$\|ok$i.png\$" | head -1)
    check "crash: image $i whole" cmp "$WWW/ok$i.png" "$STORE/datasets/crash/.vfs-fetched/$f"
done

# ---- train.json written while the dataset downloads: accepted, the run waits ----
mkdir "$MNT/datasets/later"
cp "$SRC/slow.json" "$MNT/datasets/later/"
check "later: downloads running" wait_status "$MNT/datasets/later/status" "fetching: " 10
mkdir "$MNT/models/later"
check "train.json on a dataset still downloading is accepted" \
    sh -c "echo '{\"dataset\": \"later\", \"budget_minutes\": 2}' > '$MNT/models/later/train.json'"
check "the run says it waits for the download" bash -c \
    "for i in \$(seq 100); do grep -q 'waiting for dataset \"later\" to be downloaded' '$MNT/models/later/log' && exit 0; sleep 0.1; done; exit 1"
check "then it trains and succeeds" wait_status "$MNT/models/later/status" "succeeded" 300
check "the dataset is ready" wait_status "$MNT/datasets/later/status" "ready: 4 images" 5

# ---- unmount cancels running transfers at once ----
vfs_umount
export VFS_FETCH_STALL_TIMEOUT=60
vfs_mount
for i in $(seq 8); do echo "$i st$i.png $U/stall/st$i.png c$((i % 2))"; done | mkurlcoco "$SRC/stuck.json"
mkdir "$MNT/datasets/stuck"
cp "$SRC/stuck.json" "$MNT/datasets/stuck/"
check "stuck: fetching" wait_status "$MNT/datasets/stuck/status" "fetching: 0/8" 10
sleep 1
t0=$(date +%s%N)
vfs_umount
t=$((($(date +%s%N) - t0) / 1000000))
echo "unmount with 8 stalled transfers: $t ms"
check "unmount with stalled transfers is quick (under 3 s)" test "$t" -lt 3000
check "unmount leaves no temp files" test -z "$(ls -A "$STORE/.tmp" 2>/dev/null)"

vfs_done
