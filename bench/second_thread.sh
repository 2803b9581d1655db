#!/usr/bin/env bash
# bench/second_thread.sh: what a second thread buys at batch 1 (issue 15
# item 2), on an idle machine and beside other work, in one run.
#
# For each build given (the first is "this", a second one, e.g. main before a
# change, is the baseline), bench_backbone at batch 1 with 1 and 2 threads,
# ROUNDS times alternating, then the same with BUSY busy loops running in
# another session (another user's job: the kernel schedules sessions as
# groups, so loops in our own session would only compete with us). Prints
# per network the median ms per image and the speed-up 1t / 2t, and the
# 2-thread medians apart by where the two CPUs sat (bench_corelat, run
# before each run: a shared L3 or not; this host moves them).
#
# Usage: bench/second_thread.sh BUILD [BASE_BUILD]
# Env: ROUNDS (3), REPS (10), BUSY (2: one loop per core here), OMP_WAIT_POLICY
# (passive, as the daemon sets it).
set -euo pipefail
builds=("$@")
[ ${#builds[@]} -ge 1 ] || { echo "usage: $0 BUILD [BASE_BUILD]" >&2; exit 2; }
rounds=${ROUNDS:-3} reps=${REPS:-10} busy=${BUSY:-2}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
tmp=$(mktemp -d)
loops=()
stop_busy() { for p in "${loops[@]}"; do kill -- "-$p" 2>/dev/null || true; done; loops=(); }
trap 'stop_busy; rm -rf "$tmp"' EXIT

run_all() { # $1: label (idle or busy)
    for r in $(seq "$rounds"); do
        for b in "${!builds[@]}"; do
            for t in 1 2; do
                # where the two CPUs sit at this moment (bench_corelat): a shared L3 or not
                lat=$("${builds[0]}/bench/bench_corelat" 0 1 20000 | sed -E 's/.*"corelat_ns":([0-9]+).*/\1/')
                "${builds[$b]}/bench/bench_backbone" --reps "$reps" --threads "$t" --batch 1 \
                    --no-peak 2>/dev/null | grep '"runtime"' |
                    sed "s/^{/{\"build\":$b,\"load\":\"$1\",\"round\":$r,\"corelat_ns\":${lat:-0},/" >> "$tmp/runs.jsonl"
            done
        done
    done
}

echo "# idle: ${builds[*]}, $rounds rounds" >&2
run_all idle
if [ "$busy" -gt 0 ]; then
    for i in $(seq "$busy"); do
        setsid bash -c 'while :; do :; done' & loops+=($!)
    done
    sleep 1
    echo "# beside $busy busy loops in another session" >&2
    run_all busy
    stop_busy
fi

python3 - "$tmp/runs.jsonl" "${builds[@]}" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
builds = sys.argv[2:]
print("build: " + ", ".join(f"{i} = {b}" for i, b in enumerate(builds)))
# 2-thread runs apart by where the CPUs sat (bench_corelat just before the run):
# "shared L3" under 200 ns round trip, "apart" above
def placement(r):
    return "shared L3" if r["corelat_ns"] < 200 else "apart"
print("| load | network | build | 1 thread ms | 2 threads ms | 1t / 2t | 2t shared L3 (runs) | 2t apart (runs) |")
print("|---|---|---|---|---|---|---|---|")
keys = []
for r in rows:
    k = (r["load"], r["model"], r["case"], r["size"])
    if k not in keys:
        keys.append(k)
def med(v):
    return f"{statistics.median(v):.2f} ({len(v)})" if v else "- (0)"
for load, model, case, size in keys:
    for b in range(len(builds)):
        sel = [r for r in rows if r["build"] == b and r["load"] == load and r["model"] == model and
               r["case"] == case and r["size"] == size]
        ms = {}
        for t in (1, 2):
            v = [r["ms_per_image"] for r in sel if r["threads"] == t]
            ms[t] = statistics.median(v) if v else float("nan")
        two = {p: [r["ms_per_image"] for r in sel if r["threads"] == 2 and placement(r) == p]
               for p in ("shared L3", "apart")}
        print(f"| {load} | {model} {case} @{size} | {b} | {ms[1]:.2f} | {ms[2]:.2f} | "
              f"{ms[1] / ms[2]:.2f} | {med(two['shared L3'])} | {med(two['apart'])} |")
EOF
