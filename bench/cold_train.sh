#!/usr/bin/env bash
# bench/cold_train.sh [DATASET [SUBSET.json]]: a cold few-shot classifier
# (not a test). Trains the classification recipe on a 10-way 10-shot subset
# with an EMPTY feature cache, the default budget (10 CPU minutes), 2
# threads and no test set (a held-out split picks the recipe, as train.json
# without test_dataset does), through bench_fewshot (the engine call the
# mount's training runs). Prints the wall and CPU seconds of the whole run,
# then the log's time account: one line per feature pass (backbone, size,
# augmentation) and one per stage (features, search, fine-tuning, final,
# evaluation, and the decoding and resizing inside them), with the load
# average before and after (the machine may be shared; CPU seconds are the
# steadier figure).
# Defaults: DATASET clothing under $DATASETS (default /work/shared/datasets),
# SUBSET /work/i9/DATASET_10_0.json (10 images per category, seed 0).
# Env: BACKBONES (default centernet,efficientnet-lite0,efficientnet-lite2),
# BUDGET_MIN (10), THREADS (2), RUNS (1), TEST (a COCO test file, optional:
# its features are then part of the time, as with test_dataset).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BF=${BF:-$ROOT/build/bench/bench_fewshot}
DS=${1:-clothing}
DATASETS=${DATASETS:-/work/shared/datasets}
SUB=${2:-/work/i9/${DS}_10_0.json}
[ -x "$BF" ] || { echo "bench/cold_train.sh: $BF missing (cmake --build build)"; exit 1; }
[ -d "$DATASETS/$DS" ] || { echo "bench/cold_train.sh: no dataset $DATASETS/$DS (set DATASETS)"; exit 1; }
[ -f "$SUB" ] || { echo "bench/cold_train.sh: no subset file $SUB (a COCO file of the training images)"; exit 1; }
CACHE=$(mktemp -d "${TMPDIR:-/tmp}/vfs-cold.XXXXXX")
trap 'rm -rf "$CACHE"' EXIT
args=(--root "$DATASETS/$DS" --train "$SUB"
    --backbones "${BACKBONES:-centernet,efficientnet-lite0,efficientnet-lite2}"
    --budget-min "${BUDGET_MIN:-10}" --threads "${THREADS:-2}" --seed 0 --log)
[ -n "${TEST:-}" ] && args+=(--test "$TEST")
for r in $(seq 1 "${RUNS:-1}"); do
    rm -rf "${CACHE:?}"/*
    load0=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(date +%s.%N)
    out=$("$BF" "${args[@]}" --cache "$CACHE" 2>&1)
    t1=$(date +%s.%N)
    load1=$(cut -d' ' -f1 /proc/loadavg)
    json=$(printf '%s\n' "$out" | grep '^{')
    printf 'run %d: %s 10-way 10-shot cold: %.1f s wall (process), train %s s wall, %s CPU s, top1 %s (held-out), load %s -> %s\n' \
        "$r" "$DS" "$(echo "$t1 - $t0" | bc)" \
        "$(printf '%s' "$json" | jq -r .train_wall_s)" "$(printf '%s' "$json" | jq -r .train_cpu_s)" \
        "$(printf '%s' "$json" | jq -r .top1)" "$load0" "$load1"
    printf '%s\n' "$out" | grep -E '^  \| (features |stage |time by stage)' | sed 's/^  | /    /'
done
