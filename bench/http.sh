#!/usr/bin/env bash
# bench/http.sh [path/to/visionfs]: HTTP analyze benchmark (not a test).
#
# In one run, on one classifier trained through the mount, the same images
# answered three ways, with 1 and with 8 concurrent clients:
#   engine  bench_predict: fs_recipe_predict on the model file (the function
#           behind predict/ and analyze), 1 or min(8, cores) threads (the
#           daemon's prediction queue has one worker per core), BLAS on one
#           thread as in a daemon that trained
#   mount   write the image into models/m/predict/, read its .json (open
#           waits for the answer), remove both; 1 or 8 threads
#   http    POST /computervision/imageanalysis:analyze (octet-stream) on a
#           kept-alive connection per client; 1 or 8 clients
# Prints requests per second, p50 and p99 latency (ms), and each rate as a
# ratio of the engine's at the same concurrency (the issue's goal: HTTP at
# least 0.9). The machine may be shared: every line is measured ROUNDS
# times (default 3), the rounds interleaved, and the best round of each is
# shown (the least disturbed one); compare ratios from one run.
# Env: N (calls per line, default 200), NIMG (distinct images, default 16),
# W, H (image size, default 640x480), BENCH_DIR (default /tmp), BENCH_PREDICT
# (the bench_predict binary; default next to visionfs, in bench/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=$(readlink -f "${1:-$ROOT/build/visionfs}")
BP=${BENCH_PREDICT:-$(dirname "$BIN")/bench/bench_predict}
[ -x "$BP" ] || { echo "bench/http.sh: $BP missing (cmake --build build)"; exit 1; }
N=${N:-200}
ROUNDS=${ROUNDS:-3}
NIMG=${NIMG:-16}
IW=${W:-640}
IH=${H:-480}
B=$(mktemp -d "${BENCH_DIR:-/tmp}/vfs-bench-http.XXXXXX")
MNT=$B/mnt
PID=
cleanup() {
    set +e
    mountpoint -q "$MNT" && fusermount3 -u "$MNT"
    [ -n "$PID" ] && wait "$PID" 2>/dev/null
    rm -rf "$B"
}
trap cleanup EXIT
mkdir -p "$MNT" "$B/img"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$ROOT/tests/e2e/test_models_mkdata.py" cls "$B/train" 6 1
for i in $(seq "$NIMG"); do
    python3 "$ROOT/tests/e2e/test_detect_mkdata.py" one "$B/img/i$i.png" "$i" "$IW" "$IH" >/dev/null
done
"$BIN" --store "$B/store" -f --http "127.0.0.1:$PORT" "$MNT" >"$B/daemon.log" 2>&1 &
PID=$!
for i in $(seq 100); do [ -f "$MNT/README" ] && break; sleep 0.1; done
mkdir "$MNT/datasets/train"
cp -r "$B/train/." "$MNT/datasets/train/"
for i in $(seq 600); do [[ "$(head -n1 "$MNT/datasets/train/status")" == ready* ]] && break; sleep 0.1; done
mkdir "$MNT/models/m"
echo '{"dataset": "train", "budget_minutes": 1}' >"$MNT/models/m/train.json"
for i in $(seq 3000); do
    s=$(head -n1 "$MNT/models/m/status")
    [[ "$s" == succeeded* || "$s" == failed* ]] && break
    sleep 0.1
done
[[ "$s" == succeeded* ]] || { echo "bench/http.sh: training: $s"; exit 1; }
cp "$MNT/models/m/model.safetensors" "$B/model.safetensors"
KEY=$(cat "$B/store/http-key")
echo "model: $(jq -c .recipe "$MNT/models/m/evaluation.json" 2>/dev/null || true)" >&2
echo "cores: $(nproc); $NIMG images ${IW}x${IH}; $N calls per line" >&2

# BLAS on one thread, as in the daemon: engine/train/tape.c sets OpenBLAS
# to one thread process-wide once a training ran (threaded BLAS would give
# a lone engine call both cores, which a daemon that trained never does)
# and at most one thread per core, as the daemon's prediction queue
NCPU=$(nproc)
engine() {
    local c
    for c in 1 8; do
        OPENBLAS_NUM_THREADS=1 "$BP" "$B/model.safetensors" "$((c < NCPU ? c : NCPU))" "$N" "$B"/img/*.png |
            sed "s/^/engine $c /" >>"$B/results"
    done
}
clients() {
    python3 - "$MNT/models/m/predict" "127.0.0.1" "$PORT" "$KEY" "$N" "$B/img" >>"$B/results" <<'PY'
import http.client, json, os, sys, threading, time

pred, host, port, key, n, imgdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
imgs = [open(os.path.join(imgdir, f), "rb").read() for f in sorted(os.listdir(imgdir))]


def mount_call(i, data):
    p = os.path.join(pred, "b%d.png" % i)
    with open(p, "wb") as f:
        f.write(data)
    with open(p + ".json") as f:
        j = json.load(f)
    os.unlink(p + ".json")
    os.unlink(p)
    assert "customModelResult" in j, j


def http_caller():
    c = http.client.HTTPConnection(host, port)

    def call(i, data):
        c.request("POST", "/computervision/imageanalysis:analyze?model-name=m&api-version=2023-04-01-preview",
                  body=data, headers={"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/octet-stream"})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, body
    return call


def run(name, clients, make_call):
    calls = [make_call() for _ in range(clients)]
    calls[0](10**6, imgs[0])  # warm
    lat = [0.0] * n
    nxt = [0]
    lock = threading.Lock()

    def worker(call):
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            t0 = time.monotonic()
            call(i, imgs[i % len(imgs)])
            lat[i] = time.monotonic() - t0

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(c,)) for c in calls]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    lat.sort()
    print("%s %d %s" % (name, clients, json.dumps({"calls": n, "per_s": round(n / secs, 2),
          "p50_ms": round(1000 * lat[n // 2], 1), "p99_ms": round(1000 * lat[min(n - 1, n * 99 // 100)], 1)})))
    sys.stdout.flush()


for c in (1, 8):
    run("mount", c, lambda: mount_call)
    run("http", c, http_caller)
PY

}
for r in $(seq "$ROUNDS"); do
    engine
    clients
done
python3 - "$B/results" <<'PY'
import json, sys
best = {}
for line in open(sys.argv[1]):
    name, c, j = line.split(" ", 2)
    j = json.loads(j)
    if (name, int(c)) not in best or j["per_s"] > best[(name, int(c))]["per_s"]:
        best[(name, int(c))] = j
rows = [(name, c, j) for (name, c), j in sorted(best.items())]
eng = {c: j["per_s"] for name, c, j in rows if name == "engine"}
print("| path | clients | requests/s | p50 ms | p99 ms | / engine |")
print("|---|---|---|---|---|---|")
for name in ("engine", "mount", "http"):
    for n2, c, j in rows:
        if n2 == name:
            print("| %s | %d | %.1f | %.1f | %.1f | %.2f |" % (name, c, j["per_s"], j["p50_ms"], j["p99_ms"], j["per_s"] / eng[c]))
PY
