#!/usr/bin/env bash
# bench/backbone_peers.sh: the engine against ONNX Runtime and LiteRT (the
# CPU runtimes a user would pick instead) on the same networks with the same
# weights, in one run (issue 15, items 1 and 2).
#
# 1. bench_backbone --export writes each network's bare graph as ONNX
#    (eng_model_emit_onnx, from the installed backbones, read only) with the
#    engine's outputs on a real photo; bench/onnx2tflite.py writes the same
#    graph as a float32 .tflite;
# 2. bench/peers.py check: ONNX Runtime and LiteRT must give the engine's
#    outputs within 1e-4 (max abs) on that photo, or the run stops;
# 3. ROUNDS rounds, each: for batch 1 and 8, threads 1 and 2: the engine,
#    ONNX Runtime, LiteRT one after another (interleaved), each the median of
#    REPS runs per network, pinned with taskset (1 thread: CPU 0; 2 threads:
#    CPUs 0,1); the table takes the median over rounds;
# 4. images/s per runtime, the engine's ratio to each peer at the same thread
#    count and batch, and each runtime's 2-thread/1-thread scaling;
# 5. the ceiling: each round also measures one thread's FMA peak (AVX2 and
#    AVX-512, bench_backbone --peak-only, on the CPU the 1-thread runs use),
#    and at batch 1, 1 thread the summary prints each runtime's GFLOP/s (the
#    network's FLOPs as the engine counts them, over its CPU time) as a share
#    of that peak, and the fastest any fp32 runtime could be against each
#    peer: the peer's CPU time over the network's FLOPs at the peak. Below
#    1.2 there, the goal is beyond what this CPU can do in fp32 with the same
#    arithmetic (depthwise and element-wise ops never reach the peak, so the
#    true ceiling is lower still).
#
# Usage: bench/backbone_peers.sh [BUILD_DIR]   (default: build)
#   env REPS (7), ROUNDS (3), PHOTO (a real photo; default: the clothing
#   dataset's 000001.jpg in ../shared or /work/shared), NETS (networks, as
#   the export names them), PROFILE=1 adds the per-op profile of the engine
#   and of ONNX Runtime at batch 1, 1 thread, BATCHES ("1 8") and THREADS
#   ("1 2") narrow the grid, CPU1 (0) is the CPU 1-thread runs are pinned to.
# Needs BUILD_DIR/bench/bench_backbone and pip; the pinned peers install into
# a venv outside the tree ($XDG_CACHE_HOME/visionfs-bench-venv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
reps=${REPS:-7}
rounds=${ROUNDS:-3}
nets=${NETS:-centernet-backbone-512 centernet-detector-512 efficientnet-lite0-backbone-224 efficientnet-lite2-backbone-260}
bin=$build/bench/bench_backbone
if [ ! -x "$bin" ]; then
    echo "bench/backbone_peers.sh: $bin missing; build it: cmake --build $build --target bench_backbone" >&2
    exit 2
fi
photo=${PHOTO:-}
if [ -z "$photo" ]; then
    for s in "$root/../shared" /work/shared; do
        [ -f "$s/datasets/clothing/images/000001.jpg" ] && photo=$s/datasets/clothing/images/000001.jpg && break
    done
fi
[ -f "$photo" ] || { echo "bench/backbone_peers.sh: no photo to check the peers on; set PHOTO=path.jpg" >&2; exit 2; }

venv=${XDG_CACHE_HOME:-$HOME/.cache}/visionfs-bench-venv
py=$venv/bin/python3
want='import onnx, onnxruntime, ai_edge_litert, flatbuffers; assert onnx.__version__ == "1.16.2" and onnxruntime.__version__ == "1.19.2"'
if ! "$py" -c "$want" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q onnx==1.16.2 onnxruntime==1.19.2 ai-edge-litert==2.3.0 \
        flatbuffers==25.12.19 numpy==2.4.6 protobuf==7.36.2 >&2
fi
echo "# peers: $("$py" -c 'import onnxruntime, importlib.metadata as m; print("onnxruntime", onnxruntime.__version__, "ai-edge-litert", m.version("ai-edge-litert"))')" >&2

export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # as bench/backbone: see docs/engine.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ex=$tmp/export
mkdir "$ex"
"$bin" --export "$ex" --image "$photo" > "$ex/all.jsonl"
: > "$ex/export.jsonl"
cases=()
for n in $nets; do
    grep "\"name\":\"$n\"" "$ex/all.jsonl" >> "$ex/export.jsonl" || { echo "# $n: not installed, skipped" >&2; continue; }
    cases+=(--case "$n")
    "$py" "$root/bench/onnx2tflite.py" "$ex/$n.onnx" "$ex/$n.tflite"
done
echo "# outputs on $photo against the engine's (1 thread):" >&2
"$py" "$root/bench/peers.py" check "$ex" ort litert 2>/dev/null | sed 's/^/#   /' >&2 ||
    { echo "bench/backbone_peers.sh: a peer does not give the engine's outputs; not timing" >&2; exit 1; }

pin() { # pin THREADS: the taskset prefix
    if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
        [ "$1" = 1 ] && echo "taskset -c ${CPU1:-0}" || echo "taskset -c 0,1"
    fi
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$rounds"); do
    for b in ${BATCHES:-1 8}; do
        for t in ${THREADS:-1 2}; do
            echo "# round $r batch $b threads $t (load $(cut -d' ' -f1 /proc/loadavg))" >&2
            [ "$t" = 1 ] && [ "$b" = 1 ] && $(pin 1) "$bin" --peak-only >> "$tmp/runs.jsonl"
            $(pin $t) "$bin" --reps "$reps" --threads "$t" --batch "$b" --no-peak "${cases[@]}" |
                grep '"runtime"' >> "$tmp/runs.jsonl"
            for p in ort litert; do
                $(pin $t) "$py" "$root/bench/peers.py" time "$ex" "$p" "$t" "$b" "$reps" \
                    2>/dev/null >> "$tmp/runs.jsonl"
            done
        done
    done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "${PROFILE:-0}" = 1 ]; then
    $(pin 1) "$bin" --reps "$reps" --threads 1 --batch 1 --no-peak --profile "${cases[@]}" |
        grep '"profile"' > "$tmp/prof.jsonl"
    $(pin 1) "$py" "$root/bench/peers.py" profile "$ex" "$reps" 2>/dev/null >> "$tmp/prof.jsonl"
fi

"$py" - "$tmp" "$reps" "$rounds" "$load0" "$load1" <<'EOF'
import json, os, statistics, sys
tmp, reps, rounds, load0, load1 = sys.argv[1:6]
lines = [json.loads(l) for l in open(os.path.join(tmp, "runs.jsonl")) if l.startswith("{")]
runs = [x for x in lines if "runtime" in x]
peaks = [max(x.get("fma_peak_gflops_1t", 0), x.get("fma512_peak_gflops_1t", 0))
         for x in lines if "fma_peak_gflops_1t" in x]
gflop = {f"{x['model']}-{x['case']}-{x['size']}": x["gflop"] for x in runs if x["runtime"] == "engine"}
med, cpu = {}, {}
for x in runs:
    k = (x["runtime"], f"{x['model']}-{x['case']}-{x['size']}", x["batch"], x["threads"])
    med.setdefault(k, []).append(x["median_ms_per_image"])
    cpu.setdefault(k, []).append(x["cpu_ms_per_image"])
ms = {k: statistics.median(v) for k, v in med.items()}
cp = {k: statistics.median(v) for k, v in cpu.items()}
nets = list(dict.fromkeys(k[1] for k in ms))
print(f"load average {load0} at the start, {load1} at the end; 2 cores; median of {reps} runs per "
      f"case, median of {rounds} interleaved rounds; 1 thread pinned to CPU {os.environ.get('CPU1', '0')}, 2 threads to 0,1")
print("img/s: images per second (wall); x ort / x litert: engine img/s over the peer's at the same "
      "threads and batch;\ncpu x: the same in CPU time per image (all threads; steadier on a shared machine)")
hdr = f"{'network':<32}{'batch':>6}{'thr':>4}{'engine':>9}{'ort':>9}{'litert':>9}{'x ort':>7}{'x litert':>9}{'cpu x ort':>10}{'cpu x lite':>11}"
print(hdr)
def f(v, w, p=1):
    return f"{v:>{w}.{p}f}" if v is not None else f"{'-':>{w}}"
worst = {}
for b in (1, 8):
    for t in (1, 2):
        for n in nets:
            e, o, l = (ms.get((r, n, b, t)) for r in ("engine", "onnxruntime", "litert"))
            ce, co, cl = (cp.get((r, n, b, t)) for r in ("engine", "onnxruntime", "litert"))
            ro = o / e if e and o else None
            rl = l / e if e and l else None
            if b == 1:
                for name, v in (("onnxruntime", ro), ("litert", rl)):
                    if v is not None:
                        worst.setdefault((name, t), []).append((v, n))
            print(f"{n:<32}{b:>6}{t:>4}{f(1000 / e if e else None, 9)}{f(1000 / o if o else None, 9)}"
                  f"{f(1000 / l if l else None, 9)}{f(ro, 7, 2)}{f(rl, 9, 2)}"
                  f"{f(co / ce if ce and co else None, 10, 2)}{f(cl / ce if ce and cl else None, 11, 2)}")
print("CPU ms per image (all threads), batch / threads as above:")
print(f"{'network':<32}{'batch':>6}{'thr':>4}{'engine':>9}{'ort':>9}{'litert':>9}")
for b in (1, 8):
    for t in (1, 2):
        for n in nets:
            if (("engine", n, b, t)) in cp:
                print(f"{n:<32}{b:>6}{t:>4}" + "".join(f(cp.get((r, n, b, t)), 9, 2)
                      for r in ("engine", "onnxruntime", "litert")))
print("2-thread / 1-thread scaling (wall, img/s):")
print(f"{'network':<32}{'batch':>6}{'engine':>8}{'ort':>8}{'litert':>8}")
for b in (1, 8):
    for n in nets:
        s = [ms[(r, n, b, 1)] / ms[(r, n, b, 2)] if (r, n, b, 1) in ms and (r, n, b, 2) in ms else None
             for r in ("engine", "onnxruntime", "litert")]
        print(f"{n:<32}{b:>6}" + "".join(f(v, 8, 2) for v in s))
for (name, t), v in sorted(worst.items()):
    lo = min(v)
    print(f"batch 1, {t} thread(s): engine / {name} lowest {lo[0]:.2f} ({lo[1]}); goal 1.20: "
          f"{'met' if lo[0] >= 1.2 else 'not met'}")
if peaks and (1, 1) in {(k[2], k[3]) for k in cp}:
    pk = max(peaks)
    print(f"the ceiling, batch 1, 1 thread: FMA peak of one thread {pk:.1f} GFLOP/s (highest of the "
          f"rounds' {', '.join(f'{v:.1f}' for v in peaks)}); GFLOP/s = the network's GFLOP per image "
          "over each runtime's CPU time;\nat peak: the ratio an fp32 runtime running every FLOP at the "
          "peak would reach over the peer")
    print(f"{'network':<32}{'GFLOP':>7}{'engine':>8}{'ort':>8}{'litert':>8}"
          f"{'% peak e/o/l':>15}{'at peak x ort':>14}{'x litert':>9}")
    for n in nets:
        c = [cp.get((r, n, 1, 1)) for r in ("engine", "onnxruntime", "litert")]
        if n not in gflop or None in c:
            continue
        g = gflop[n]
        rate = [g / (v / 1000) for v in c]
        floor_ms = g / pk * 1000
        print(f"{n:<32}{g:7.3f}" + "".join(f(v, 8) for v in rate) +
              f"{'/'.join(f'{100 * v / pk:.0f}' for v in rate):>15}"
              f"{f(c[1] / floor_ms, 14, 2)}{f(c[2] / floor_ms, 9, 2)}")
p = os.path.join(tmp, "prof.jsonl")
if os.path.exists(p):
    prof = [json.loads(l) for l in open(p) if l.startswith("{")]
    print("per op type, batch 1, 1 thread, CPU ms per image: engine: its profile's CPU time per op "
          "(eng_run_profile);\nonnxruntime: its own profiler's kernel wall time per op as a share of its "
          "run, times its CPU ms per image in the timed runs above (its profiler has no CPU time)")
    same = {"AddV2": "Add", "BiasAdd": "Add", "Relu6": "Clip", "Mean": "ReduceMean",
            "ResizeBilinear": "Resize", "ConcatV2": "Concat", "RealDiv": "Div"}
    for n in nets:
        e = {}
        for x in prof:
            if x["profile"] == n and "runs" in x:
                k = same.get(x["op"], x["op"])
                e[k] = e.get(k, 0) + x["cpu_ms"] / x["runs"]
        ow = {x["op"]: x["ms"] for x in prof if x["profile"] == n and x.get("runtime") == "onnxruntime"}
        ocpu = cp.get(("onnxruntime", n, 1, 1), 0)
        tot = sum(ow.values()) or 1
        o = {k: v / tot * ocpu for k, v in ow.items()}
        print(f"  {n}: engine {sum(e.values()):.1f} ms, onnxruntime {ocpu:.1f} ms "
              f"(its profile's kernels: {tot:.1f} ms wall)")
        print(f"    {'op':<26}{'engine':>8}{'ort':>8}{'engine-ort':>11}")
        for op in sorted(set(e) | set(o), key=lambda k: -max(e.get(k, 0), o.get(k, 0))):
            print(f"    {op:<26}{e.get(op, 0):8.2f}{o.get(op, 0):8.2f}{e.get(op, 0) - o.get(op, 0):11.2f}")
EOF
