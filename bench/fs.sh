#!/usr/bin/env bash
# bench/fs.sh [path/to/visionfs] [PASSTHROUGH_LL]: file-system benchmark (not a test).
#
# Every figure is a ratio against the same work on a plain folder of the same
# disk in the same run (plain time / visionfs time, so 1.0 = as fast as the
# disk, higher is better), from the best of ROUNDS runs (default 3) of each
# (the machine is shared: the best run is the least disturbed one):
#   cp -r of 2,000 files of ~300 KB (photo-sized) into a dataset
#   cp -r of 10,000 files of ~20 KB into a dataset
#   ls -l of that 10,000-file folder (attributes expired first)
#   a 10,000-image COCO file: from `cp ann.json` until `status` says ready,
#     against the same work by a script on a plain folder (parse the JSON,
#     stat every image, read every header)
# plus, for the two cp rows, the CPU time each daemon (visionfs, passthrough_ll,
# the VFS_BASE build) spent serving the copy
# (all its threads, from /proc; steadier than wall time on a shared machine,
# and the figure that says how much work a daemon does per file),
# and, first (before any delete), the steps of one photo's copy
# (bench_filesteps: open O_CREAT|O_EXCL, one 300 KB write, close; 500 new
# files, mean microseconds per step) on the plain folder, visionfs and
# passthrough_ll, with the bound they set: even a mount whose write cost no
# more than the plain folder's would reach at most plain total / (the
# mount's create + plain write + the mount's close).
# With PASSTHROUGH_LL (a built libfuse example/passthrough_ll), the two cp
# figures are also measured through it, for comparison.
# Env: ROUNDS, BENCH_DIR (default a temp dir under /tmp), VFS_BASE (another
# visionfs build, e.g. of the previous commit: the cp and ls figures are
# measured through it too, interleaved round by round, so a change is judged
# by ratios from the same run), FRESH=1 (each round copies into a new folder
# and nothing is deleted until the end; by default each round deletes the
# previous copy first, as this bench always did. On ext4 without a journal,
# files created within a minute of deleting thousands in the same block group
# cost ext4 a scan past every recently freed inode, which then weighs on
# whichever target shares that group: FRESH=1 measures the copy alone).
# The daemons get 2 s after mounting to finish their start-up work (checking
# the installed backbones) before anything is timed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=$(readlink -f "${1:-$ROOT/build/visionfs}")
PTLL=${2:-}
ROUNDS=${ROUNDS:-3}
FRESH=${FRESH:-0}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/vfs-bench.XXXXXX")
MNT=$W/mnt
PT=$W/pt
BASE=${VFS_BASE:+$(readlink -f "$VFS_BASE")}
BMNT=$W/bmnt
mkdir -p "$MNT" "$PT" "$BMNT" "$W/plain" "$W/ptback"
PID=
PTPID=
BPID=

cleanup() {
    set +e
    mountpoint -q "$MNT" && fusermount3 -u "$MNT"
    mountpoint -q "$PT" && fusermount3 -u "$PT"
    mountpoint -q "$BMNT" && fusermount3 -u "$BMNT"
    [ -n "$BPID" ] && wait "$BPID" 2>/dev/null
    [ -n "$PID" ] && wait "$PID" 2>/dev/null
    [ -n "$PTPID" ] && wait "$PTPID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
el() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

echo "making the source files in $W ..."
python3 - "$W" <<'EOF'
import os, random, sys
w = sys.argv[1]
rng = random.Random(7)
for name, n, size in (("photos", 2000, 300 * 1024), ("small", 10000, 20 * 1024)):
    d = os.path.join(w, "src", name)
    os.makedirs(d)
    blob = rng.randbytes(size + 4096)
    for i in range(n):
        off = i % 4096
        with open(os.path.join(d, f"img{i:05d}.jpg"), "wb") as f:
            f.write(blob[off:off + size])
EOF
python3 "$ROOT/tests/e2e/mkimg.py" "$W/one.png" 64 64 1
python3 - "$W" <<'EOF'
import json, os, shutil, sys
w = sys.argv[1]
d = os.path.join(w, "src", "coco", "images")
os.makedirs(d)
images, anns = [], []
for i in range(10000):
    shutil.copyfile(os.path.join(w, "one.png"), os.path.join(d, f"im{i:05d}.png"))
    images.append({"id": i + 1, "width": 64, "height": 64, "file_name": f"images/im{i:05d}.png"})
    anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 10})
cats = [{"id": c, "name": f"class{c}"} for c in range(1, 11)]
json.dump({"images": images, "annotations": anns, "categories": cats},
          open(os.path.join(w, "src", "ann.json"), "w"))
EOF
sync

"$BIN" --store "$W/store" -f "$MNT" 2>"$W/daemon.log" &
PID=$!
for _ in $(seq 100); do [ -f "$MNT/README" ] && break; sleep 0.1; done
if [ -n "$BASE" ]; then
    "$BASE" --store "$W/bstore" -f "$BMNT" 2>"$W/base.log" &
    BPID=$!
    for _ in $(seq 100); do [ -f "$BMNT/README" ] && break; sleep 0.1; done
fi
# passthrough_ll keeps an fd open for every inode the kernel knows: with
# FRESH=1 it is mounted again each round, or it runs out of fds
pt_start() {
    "$PTLL" -f -o source="$W/ptback" "$PT" 2>/dev/null &
    PTPID=$!
    for _ in $(seq 100); do mountpoint -q "$PT" && break; sleep 0.1; done
}
pt_stop() {
    fusermount3 -u "$PT"
    wait "$PTPID" 2>/dev/null || true
    PTPID=
}
[ -n "$PTLL" ] && pt_start
sleep 2

# per-file steps, before anything is deleted (see the ext4 note above)
STEPS=$(dirname "$BIN")/bench/bench_filesteps
STEPS_OUT=
if [ -x "$STEPS" ]; then
    mkdir "$W/plain/steps" "$MNT/datasets/steps"
    sp=$("$STEPS" "$W/plain/steps" 500 307200)
    sv=$("$STEPS" "$MNT/datasets/steps" 500 307200)
    spt=
    if [ -n "$PTLL" ]; then
        mkdir "$PT/steps"
        spt=$("$STEPS" "$PT/steps" 500 307200)
    fi
    STEPS_OUT=$(python3 - "$sp" "$sv" "$spt" <<'EOF'
import sys
def parse(s):
    f = s.split()
    return {f[i]: float(f[i + 1]) for i in range(0, 8, 2)} if s else None
p, v, t = (parse(a) for a in sys.argv[1:4])
print("| steps of one 300 KB file (us) | create | write | close | total | bound on the ratio |")
print("|---|---|---|---|---|---|")
def row(name, r):
    if not r:
        return
    bound = p["total"] / (r["create"] + p["write"] + r["close"])
    print(f"| {name} | {r['create']:.1f} | {r['write']:.1f} | {r['close']:.1f} | {r['total']:.1f} | {bound:.2f} |")
row("plain folder", p)
row("visionfs", v)
row("passthrough_ll", t)
EOF
)
    rm -rf "$W/plain/steps" "$MNT/datasets/steps"
    [ -n "$PTLL" ] && rm -rf "$PT/steps"
    sleep 2
fi

# dcpu PID: CPU time of every thread of PID so far, in clock ticks
dcpu() {
    local s=0 t
    for t in /proc/"$1"/task/*/stat; do
        s=$((s + $(awk '{print $14 + $15}' "$t" 2>/dev/null || echo 0)))
    done
    echo "$s"
}
TICK=$(getconf CLK_TCK)

# time_cp SRC DST [PID]: seconds for cp -r SRC/. DST (DST made fresh); with
# PID, the daemon's CPU milliseconds for it go to the file $W/cpu.last
time_cp() {
    local t0 t1 c0=0
    [ -n "${3:-}" ] && c0=$(dcpu "$3")
    t0=$(now)
    cp -r "$1/." "$2"
    t1=$(now)
    [ -n "${3:-}" ] && echo $((($(dcpu "$3") - c0) * 1000 / TICK)) > "$W/cpu.last"
    el "$t0" "$t1"
}

declare -A RES
for set in photos small; do
    plain=() vfs=() pt=() base=() vcpu=() pcpu=() bcpu=()
    for r in $(seq "$ROUNDS"); do
        d=$set
        if [ "$FRESH" = 1 ]; then
            d=$set$r
        else
            rm -rf "$W/plain/$d" "$PT/$d" 2>/dev/null || true
            rm -rf "$MNT/datasets/$d" 2>/dev/null || true
            [ -n "$BASE" ] && { rm -rf "$BMNT/datasets/$d" 2>/dev/null || true; }
        fi
        mkdir "$W/plain/$d"
        plain+=("$(time_cp "$W/src/$set" "$W/plain/$d")")
        mkdir "$MNT/datasets/$d"
        vfs+=("$(time_cp "$W/src/$set" "$MNT/datasets/$d" "$PID")")
        vcpu+=("$(cat "$W/cpu.last")")
        if [ -n "$BASE" ]; then
            mkdir "$BMNT/datasets/$d"
            base+=("$(time_cp "$W/src/$set" "$BMNT/datasets/$d" "$BPID")")
            bcpu+=("$(cat "$W/cpu.last")")
        fi
        if [ -n "$PTLL" ]; then
            mkdir "$PT/$d"
            pt+=("$(time_cp "$W/src/$set" "$PT/$d" "$PTPID")")
            pcpu+=("$(cat "$W/cpu.last")")
            [ "$FRESH" = 1 ] && { pt_stop; pt_start; }
        fi
    done
    # the ls row lists the last copy of the small files under their set name
    if [ "$FRESH" = 1 ] && [ "$set" = small ]; then
        mv "$W/plain/small$ROUNDS" "$W/plain/small"
        mv "$MNT/datasets/small$ROUNDS" "$MNT/datasets/small"
        [ -n "$BASE" ] && mv "$BMNT/datasets/small$ROUNDS" "$BMNT/datasets/small"
    fi
    RES[$set.plain]=$(best "${plain[@]}")
    RES[$set.vfs]=$(best "${vfs[@]}")
    RES[$set.vcpu]=$(best "${vcpu[@]}")
    [ -n "$PTLL" ] && RES[$set.pcpu]=$(best "${pcpu[@]}")
    [ -n "$PTLL" ] && RES[$set.pt]=$(best "${pt[@]}")
    [ -n "$BASE" ] && RES[$set.base]=$(best "${base[@]}")
    [ -n "$BASE" ] && RES[$set.bcpu]=$(best "${bcpu[@]}")
done

# ls -l of the 10,000-file folder, attributes expired (timeouts are 1 s)
lsp=() lsv=() lsb=()
for r in $(seq "$ROUNDS"); do
    sleep 1.2
    t0=$(now); ls -l "$W/plain/small" >/dev/null; t1=$(now); lsp+=("$(el "$t0" "$t1")")
    t0=$(now); ls -l "$MNT/datasets/small" >/dev/null; t1=$(now); lsv+=("$(el "$t0" "$t1")")
    if [ -n "$BASE" ]; then
        t0=$(now); ls -l "$BMNT/datasets/small" >/dev/null; t1=$(now); lsb+=("$(el "$t0" "$t1")")
    fi
done
RES[ls.plain]=$(best "${lsp[@]}")
RES[ls.vfs]=$(best "${lsv[@]}")
[ -n "$BASE" ] && RES[ls.base]=$(best "${lsb[@]}")

# 10,000-image COCO file: images in first, then time cp ann.json .. ready
mkdir "$MNT/datasets/coco"
cp -r "$W/src/coco/images" "$MNT/datasets/coco/"
sleep 1
t0=$(now)
cp "$W/src/ann.json" "$MNT/datasets/coco/"
t_cp=$(now)
until head -n 1 "$MNT/datasets/coco/status" | grep -q "^ready"; do
    if head -n 1 "$MNT/datasets/coco/status" | grep -q "^invalid"; then
        echo "coco: $(cat "$MNT/datasets/coco/status")"; break
    fi
    sleep 0.05
done
t1=$(now)
RES[coco.vfs]=$(el "$t0" "$t1")
RES[coco.close]=$(el "$t0" "$t_cp")
mkdir -p "$W/plain/coco"
cp -r "$W/src/coco/images" "$W/plain/coco/"
t0=$(now)
cp "$W/src/ann.json" "$W/plain/coco/"
python3 - "$W/plain/coco" <<'EOF'
import json, os, sys
d = sys.argv[1]
c = json.load(open(os.path.join(d, "ann.json")))
for im in c["images"]:
    p = os.path.join(d, im["file_name"])
    os.stat(p)
    with open(p, "rb") as f:
        f.read(64)
EOF
t1=$(now)
RES[coco.plain]=$(el "$t0" "$t1")

echo
echo "| work | plain folder (s) | visionfs (s) | ratio plain/visionfs |$([ -n "$PTLL" ] && echo " passthrough_ll (s) | ratio |")"
echo "|---|---|---|---|$([ -n "$PTLL" ] && echo "---|---|")"
row() {
    local extra=""
    if [ -n "$PTLL" ] && [ -n "${RES[$2.pt]:-}" ]; then
        extra=" ${RES[$2.pt]} | $(ratio "${RES[$2.plain]}" "${RES[$2.pt]}") |"
    elif [ -n "$PTLL" ]; then
        extra=" | |"
    fi
    echo "| $1 | ${RES[$2.plain]} | ${RES[$2.vfs]} | $(ratio "${RES[$2.plain]}" "${RES[$2.vfs]}") |$extra"
}
row "cp -r 2,000 x 300 KB" photos
row "cp -r 10,000 x 20 KB" small
row "ls -l of 10,000 files" ls
row "10,000-image COCO: cp ann.json until ready" coco
echo
# cpu_table NAME KEY: the daemons' CPU for the two copies, the other daemon's
# (RES[set.KEY]) against visionfs's
cpu_table() {
    echo "| daemon CPU for the copy (ms, least of the rounds) | visionfs | $1 | ratio $1/visionfs |"
    echo "|---|---|---|---|"
    for k in "cp -r 2,000 x 300 KB:photos" "cp -r 10,000 x 20 KB:small"; do
        n=${k##*:}
        echo "| ${k%:*} | ${RES[$n.vcpu]} | ${RES[$n.$2]} | $(ratio "${RES[$n.$2]}" "${RES[$n.vcpu]}") |"
    done
}
if [ -n "$PTLL" ]; then
    cpu_table passthrough_ll pcpu
    echo
fi
if [ -n "$BASE" ]; then
    echo
    echo "same run, VFS_BASE=$BASE:"
    echo "| work | plain folder (s) | base (s) | ratio plain/base | visionfs ratio |"
    echo "|---|---|---|---|---|"
    for k in "cp -r 2,000 x 300 KB:photos" "cp -r 10,000 x 20 KB:small" "ls -l of 10,000 files:ls"; do
        n=${k##*:}
        echo "| ${k%:*} | ${RES[$n.plain]} | ${RES[$n.base]} | $(ratio "${RES[$n.plain]}" "${RES[$n.base]}") | $(ratio "${RES[$n.plain]}" "${RES[$n.vfs]}") |"
    done
    echo
    cpu_table base bcpu
fi
if [ -n "$STEPS_OUT" ]; then
    echo
    echo "$STEPS_OUT"
    echo "(bound: plain total / (create + plain write + close): the best ratio a mount with that create and close could reach)"
fi
echo "(close() of the 10,000-image ann.json returned after ${RES[coco.close]} s; best of $ROUNDS rounds$([ "$FRESH" = 1 ] && echo ", FRESH=1"); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
