#!/usr/bin/env bash
# bench/predict_latency.sh [path/to/visionfs]: predict/ latency (not a test).
#
# One photo (default: a 1600x1200 JPEG of about 300 KB made by bench_mkphoto
# from the raccoon dataset's first image: stretched, sensor grain added,
# the JPEG quality chosen for the size; or PHOTO=file) copied into
# models/M/predict/ through the mount one at a time, each timed from the
# copy's open until its .json opens and reads with content; N times (default
# 100) per kind, for a classifier and a detector trained through the mount.
# In the same run, as the anchor, the engine's own time for the same photo
# (bench_predict: fs_recipe_predict on the model file, the function behind
# predict/). One thread: the daemon and bench_predict run pinned to CPU 0
# (taskset; a prediction runs on one thread in the daemon, and there is no
# thread option), BLAS on one thread; the copying client runs on CPU 1.
# The machine may be shared: ROUNDS (default 2) interleaved rounds, and the
# best round of each line (by p50) is shown; the engine's CPU time per call
# (p50) is the steadier figure on a busy machine.
# Env: N, ROUNDS, PHOTO, BENCH_DIR (default /tmp), KINDS (default "cls det").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=$(readlink -f "${1:-$ROOT/build/visionfs}")
BD=$(dirname "$BIN")/bench
N=${N:-100}
ROUNDS=${ROUNDS:-2}
KINDS=${KINDS:-cls det}
for t in bench_predict bench_mkphoto; do
    [ -x "$BD/$t" ] || { echo "bench/predict_latency.sh: $BD/$t missing (cmake --build build)"; exit 1; }
done
B=$(mktemp -d "${BENCH_DIR:-/tmp}/vfs-bench-lat.XXXXXX")
MNT=$B/mnt
PID=
stop() {
    mountpoint -q "$MNT" && fusermount3 -u "$MNT"
    [ -n "$PID" ] && wait "$PID" 2>/dev/null
    PID=
}
cleanup() {
    set +e
    stop
    rm -rf "$B"
}
trap cleanup EXIT
mkdir -p "$MNT"
CPU0=() CPU1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    CPU0=(taskset -c 0) CPU1=(taskset -c 1)
fi
start() { # start [cmd prefix...]: the daemon
    "$@" "$BIN" --store "$B/store" -f "$MNT" >>"$B/daemon.log" 2>&1 &
    PID=$!
    for i in $(seq 100); do [ -f "$MNT/README" ] && break; sleep 0.1; done
}

if [ -n "${PHOTO:-}" ]; then
    cp "$PHOTO" "$B/photo.jpg"
    echo "photo: $PHOTO ($(stat -c %s "$PHOTO") bytes)" >&2
else
    SRC=
    for d in "$ROOT/../shared/datasets/raccoon/images" /work/shared/datasets/raccoon/images; do
        [ -f "$d/000001.jpg" ] && SRC=$d/000001.jpg && break
    done
    [ -n "$SRC" ] || { echo "bench/predict_latency.sh: no raccoon dataset: give PHOTO=file"; exit 1; }
    read -r pw ph pb pq < <("$BD/bench_mkphoto" "$SRC" 1600 1200 307200 "$B/photo.jpg")
    echo "photo: ${pw}x${ph} JPEG, $pb bytes, quality $pq (bench_mkphoto from raccoon 000001.jpg)" >&2
fi

# train both kinds through the mount (both cores), then remount pinned
start
for k in $KINDS; do
    if [ "$k" = cls ]; then
        python3 "$ROOT/tests/e2e/test_models_mkdata.py" cls "$B/train-$k" 6 1
    else
        python3 "$ROOT/tests/e2e/test_detect_mkdata.py" det "$B/train-$k" 12 1
    fi
    mkdir "$MNT/datasets/$k"
    cp -r "$B/train-$k/." "$MNT/datasets/$k/"
    for i in $(seq 600); do [[ "$(head -n1 "$MNT/datasets/$k/status")" == ready* ]] && break; sleep 0.1; done
    mkdir "$MNT/models/$k"
    kind=classifier
    [ "$k" = det ] && kind=detector
    echo "{\"dataset\": \"$k\", \"kind\": \"$kind\", \"budget_minutes\": 1}" >"$MNT/models/$k/train.json"
done
for k in $KINDS; do
    for i in $(seq 6000); do
        s=$(head -n1 "$MNT/models/$k/status")
        [[ "$s" == succeeded* || "$s" == failed* ]] && break
        sleep 0.1
    done
    [[ "$s" == succeeded* ]] || { echo "bench/predict_latency.sh: training $k: $s"; exit 1; }
    cp "$MNT/models/$k/model.safetensors" "$B/$k.safetensors"
done
stop
start "${CPU0[@]}"

for r in $(seq "$ROUNDS"); do
    for k in $KINDS; do
        OPENBLAS_NUM_THREADS=1 "${CPU0[@]}" "$BD/bench_predict" "$B/$k.safetensors" 1 "$N" \
            "$B/photo.jpg" | sed "s/^/engine $k /" >>"$B/results"
        "${CPU1[@]}" python3 - "$MNT/models/$k/predict" "$B/photo.jpg" "$N" "$k" >>"$B/results" <<'PY'
import json, os, sys, time

pred, photo, n, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
data = open(photo, "rb").read()
lat = []
for i in range(n + 1):
    p = os.path.join(pred, "p%d.jpg" % i)
    t0 = time.monotonic()
    with open(p, "wb") as f:  # what cp does: open, write, close
        f.write(data)
    while True:  # until the answer opens and reads with content
        with open(p + ".json") as f:
            s = f.read()
        if s:
            break
    t = time.monotonic() - t0
    assert "customModelResult" in json.loads(s), s
    os.unlink(p + ".json")
    os.unlink(p)
    if os.path.exists(p + ".boxes.jpg"):
        os.unlink(p + ".boxes.jpg")
    if i:  # the first one warms the model up
        lat.append(t)
lat.sort()
print("mount %s %s" % (kind, json.dumps({"calls": n, "p50_ms": round(1000 * lat[n // 2], 1),
                                         "p99_ms": round(1000 * lat[min(n - 1, n * 99 // 100)], 1)})))
PY
    done
done
python3 - "$B/results" <<'PY'
import json, sys
best = {}
for line in open(sys.argv[1]):
    path, kind, j = line.split(" ", 2)
    j = json.loads(j)
    if (path, kind) not in best or j["p50_ms"] < best[(path, kind)]["p50_ms"]:
        best[(path, kind)] = j
print("| kind | engine p50 ms | engine p99 ms | engine CPU p50 ms | predict/ p50 ms | predict/ p99 ms | predict/ p50 / engine p50 |")
print("|---|---|---|---|---|---|---|")
for kind in ("cls", "det"):
    e, m = best.get(("engine", kind)), best.get(("mount", kind))
    if e and m:
        print("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |" % (
            {"cls": "classifier", "det": "detector"}[kind], e["p50_ms"], e["p99_ms"],
            e.get("cpu_p50_ms", 0), m["p50_ms"], m["p99_ms"], m["p50_ms"] / e["p50_ms"]))
PY
