#!/usr/bin/env bash
# rss_annotations.sh: the daemon's resident memory around a large COCO write
# (issue 10: memory must go back after a big annotation file is parsed).
#
#   bench/rss_annotations.sh [build/visionfs] [IMAGES]
#
# Writes a COCO file of IMAGES images x 3 boxes (default 200000: 75 MB) into
# a new dataset of a fresh mount and prints the daemon's RSS at start, right
# after the cp, once the verifier settled, and the peak (VmHWM), in MB.
set -euo pipefail
BIN=$(readlink -f "${1:-build/visionfs}")
N=${2:-200000}
T=$(mktemp -d)
trap 'fusermount3 -u "$T/mnt" 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$T/mnt" "$T/store"
python3 - "$N" "$T/big.json" <<'PY'
import json, sys
n = int(sys.argv[1])
images = [{"id": i, "width": 640, "height": 480, "file_name": f"images/img{i}.jpg"} for i in range(1, n + 1)]
anns = [{"id": i * 3 + k, "image_id": i, "category_id": 1 + k, "bbox": [0.1, 0.1, 0.2, 0.2], "area": 0.04}
        for i in range(1, n + 1) for k in range(3)]
cats = [{"id": c, "name": f"c{c}"} for c in range(1, 4)]
json.dump({"images": images, "annotations": anns, "categories": cats}, open(sys.argv[2], "w"))
PY
"$BIN" --store "$T/store" -f "$T/mnt" >"$T/log" 2>&1 &
PID=$!
for _ in $(seq 50); do [ -f "$T/mnt/README" ] && break; sleep 0.1; done
mb() { echo $(($(awk -v k="$1" '$1 == k":" {print $2}' "/proc/$PID/status") / 1024)); }
echo "COCO file: $(($(stat -c %s "$T/big.json") >> 20)) MB, $N images"
echo "start: $(mb VmRSS) MB"
mkdir "$T/mnt/datasets/big"
cp "$T/big.json" "$T/mnt/datasets/big/ann.json"
echo "right after cp: $(mb VmRSS) MB"
for _ in $(seq 120); do head -1 "$T/mnt/datasets/big/status" | grep -q verifying || break; sleep 0.5; done
sleep 5
echo "settled: $(mb VmRSS) MB, peak $(mb VmHWM) MB ($(head -c 60 "$T/mnt/datasets/big/status"))"
fusermount3 -u "$T/mnt"
wait "$PID"
