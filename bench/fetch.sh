#!/bin/bash
# fetch.sh: benchmark of image downloads by URL (issue 6).
#
#   bench/fetch.sh [build/visionfs] [N_IMAGES] [DELAY_MS]
#
# Serves N_IMAGES (default 2000) real PNG images from loopback (node,
# bench/fetch_server.js; DELAY_MS, default 0, holds each answer back like a
# remote store's round trip), then for 1, 4 and 16 parallel transfers:
#  - visionfs: a fresh mount (VFS_FETCH_PARALLEL=P), a COCO file naming the
#    images by absolute_url copied in; "fetch" is the fetcher's own time for
#    the burst (from its log line "fetch: idle: ..."), "ready" is the time
#    from cp to status "ready: N images" (downloads, probing every image,
#    writing status);
#  - curl: the same files with `curl --parallel --parallel-max P` in one
#    process, to files on the same disk.
# Prints a table of images/s and the ratio visionfs fetch / curl, all
# measured in the same run (the machine is shared: compare ratios).
set -euo pipefail
BIN=$(readlink -f "${1:-build/visionfs}")
N=${2:-2000}
DELAY=${3:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/vfs-bench-fetch.XXXXXX)
SRV=
VPID=
cleanup() {
    set +e
    [ -n "$VPID" ] && { fusermount3 -u "$T/mnt" 2>/dev/null; wait "$VPID" 2>/dev/null; }
    [ -n "$SRV" ] && kill "$SRV" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/www" "$T/mnt"
# 16 distinct noisy 160x120 PNGs (~58 KB each, like small photos), hard-linked N times
python3 - "$T/www" <<'PY'
import random, struct, sys, zlib
for s in range(16):
    rng = random.Random(s)
    w, h = 160, 120
    raw = b"".join(b"\x00" + rng.randbytes(w * 3) for _ in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
    open("%s/seed%d.png" % (sys.argv[1], s), "wb").write(png)
PY
for i in $(seq 0 $((N - 1))); do ln "$T/www/seed$((i % 16)).png" "$T/www/im$i.png"; done
rm "$T/www"/seed*.png
node "$HERE/fetch_server.js" "$T/www" "$T/port" "$DELAY" &
SRV=$!
for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")
BYTES=$(stat -c %s "$T/www/im0.png")
python3 - "$T/coco.json" "$N" "$PORT" <<'PY'
import json, sys
out, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
images = [{"id": i + 1, "file_name": "im%d.png" % i, "width": 160, "height": 120,
           "absolute_url": "http://127.0.0.1:%s/im%d.png?sv=2020-12-06&sig=bench" % (port, i)}
          for i in range(n)]
anns = [{"id": i + 1, "image_id": i + 1, "category_id": i % 4 + 1} for i in range(n)]
cats = [{"id": c, "name": "c%d" % c} for c in range(1, 5)]
json.dump({"images": images, "annotations": anns, "categories": cats}, open(out, "w"))
PY
for i in $(seq 0 $((N - 1))); do
    printf 'url = "http://127.0.0.1:%s/im%d.png?sv=2020-12-06&sig=bench"\noutput = "%s/curl/im%d.png"\n' \
        "$PORT" "$i" "$T" "$i"
done >"$T/curl.cfg"

now() { date +%s.%N; }
echo "images: $N ($BYTES bytes each), server: node on 127.0.0.1 answering after $DELAY ms, $(nproc) cores"
printf '%-9s %14s %14s %14s %10s\n' parallel "visionfs fetch" "visionfs ready" "curl" "fetch/curl"
for P in 1 4 16; do
    rm -rf "$T/store" "$T/curl"
    mkdir -p "$T/curl"
    VFS_FETCH_PARALLEL=$P "$BIN" --store "$T/store" -f "$T/mnt" >"$T/daemon.log" 2>&1 &
    VPID=$!
    for i in $(seq 100); do mountpoint -q "$T/mnt" && [ -f "$T/mnt/README" ] && break; sleep 0.1; done
    mkdir "$T/mnt/datasets/b"
    t0=$(now)
    cp "$T/coco.json" "$T/mnt/datasets/b/"
    until grep -q "^ready: $N images" "$T/mnt/datasets/b/status" 2>/dev/null; do
        if grep -q "^invalid" "$T/mnt/datasets/b/status" 2>/dev/null; then
            echo "failed: $(cat "$T/mnt/datasets/b/status")"; exit 1
        fi
        sleep 0.02
    done
    t1=$(now)
    # the fetcher logs its summary when it next finds its queue empty
    for i in $(seq 50); do grep -q "fetch: idle:" "$T/daemon.log" && break; sleep 0.1; done
    fusermount3 -u "$T/mnt"
    wait "$VPID"
    VPID=
    # the fetcher logs one line per burst of downloads: add them up
    fetch_s=$(grep -o "fetch: idle: [0-9]* images in place, 0 failed, in [0-9.]* s" "$T/daemon.log" |
        awk -v n="$N" '{got += $3; s += $(NF-1)} END {if (got == n) print s}' || true)
    [ -n "$fetch_s" ] || { echo "fetch summary does not add up:"; grep "fetch:" "$T/daemon.log" | tail; exit 1; }
    c0=$(now)
    curl -s --fail --parallel --parallel-max "$P" --config "$T/curl.cfg" >/dev/null 2>&1 || true
    c1=$(now)
    [ "$(ls "$T/curl" | wc -l)" = "$N" ] || { echo "curl fetched $(ls "$T/curl" | wc -l) files"; exit 1; }
    python3 - "$P" "$N" "$fetch_s" "$t0" "$t1" "$c0" "$c1" <<'PY'
import sys
p, n = sys.argv[1], int(sys.argv[2])
fetch = float(sys.argv[3])
ready = float(sys.argv[5]) - float(sys.argv[4])
curl = float(sys.argv[7]) - float(sys.argv[6])
print("%-9s %10.0f/s %10.0f/s %10.0f/s %10.2f" % (p, n / fetch, n / ready, n / curl, curl / fetch))
PY
done
