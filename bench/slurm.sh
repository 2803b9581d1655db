#!/usr/bin/env bash
# bench/slurm.sh: feature extraction for 2,000 images by the local executor
# (one visionfs-worker process with every core: the same engine call the
# daemon makes when it trains) against Slurm job arrays of 1, 2 and 4 tasks
# on a one-machine cluster with two slurmd (tests/e2e/slurm_cluster.sh), in
# the same run. Prints the wall time of each, the speedup over local, and
# the overhead per task (submission to the worker's first act).
#
# Then the evaluation bench: one evaluation of N_EVAL photos (default 500)
# by a classifier (trained first by bench_fewshot on clothing, 2 images per
# category, the same backbone), computed as evaluations/ computes it
# (`visionfs-worker evaluate`, one image at a time) locally and by arrays
# of 1, 2 and 4 tasks; the overhead per job is the array's wall time minus
# the slowest task's own run (its started marker to its done marker).
#
#   bench/slurm.sh [build/visionfs-worker] [BACKBONE]
#   BENCH=features|evaluation|all (default all)
#
# Images: the first 2,000 photos of ../shared/datasets (or /work/shared/
# datasets) when present, else 2,000 generated ones (test_models_mkdata.py).
# On one machine every node shares the same cores: the speedup measured here
# is the cost of the machinery, not what N real nodes give (docs/cluster.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORKER=$(readlink -f "${1:-$ROOT/build/visionfs-worker}")
BB=${2:-efficientnet-lite0}
N=${N_IMAGES:-2000}
command -v slurmctld >/dev/null || { echo "bench/slurm.sh: slurmctld missing (apt-get install slurm-wlm munge)"; exit 1; }
source "$ROOT/tests/e2e/slurm_cluster.sh"

T=$(mktemp -d /tmp/vfs-bench-slurm.XXXXXX)
trap 'cluster_stop; rm -rf "$T"' EXIT
S=$T/store
mkdir -p "$S/models"
DS=""
for d in "$ROOT/../shared/datasets" /work/shared/datasets; do
    [ -d "$d" ] && { DS=$(readlink -f "$d"); break; }
done
if [ -n "$DS" ]; then
    ln -s "$DS" "$S/img"
    (cd "$S" && find -L img -type f \( -name '*.jpg' -o -name '*.jpeg' -o -name '*.png' \) | sort | head -n "$N" || true) >"$T/images.txt"
    what="photos from $DS"
else
    python3 "$ROOT/tests/e2e/test_models_mkdata.py" cls "$S/img" $(((N + 2) / 3)) 1
    (cd "$S" && find img -name '*.png' | sort | head -n "$N" || true) >"$T/images.txt"
    what="generated 96x96 PNGs"
fi
NI=$(wc -l <"$T/images.txt")
echo "bench/slurm.sh: $NI images ($what), backbone $BB, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
cluster_start "$T/cluster" >/dev/null

now() { date +%s.%N; }
export OMP_WAIT_POLICY=passive

BENCH=${BENCH:-all}
# local: the worker alone, all cores
rm -rf "$S/models/.vfs-cache"
t0=$(now)
[ "$BENCH" = evaluation ] || "$WORKER" extract --store "$S" --images "$T/images.txt" --backbone "$BB" --shard 0/1 --threads "$(nproc)" 2>/dev/null
LOCAL=$(echo "$(now) - $t0" | bc)
[ "$BENCH" = evaluation ] || printf '| executor | tasks | wall (s) | speedup vs local | submit -> start per task (s) |\n'
[ "$BENCH" = evaluation ] || printf '|---|---|---|---|---|\n'
[ "$BENCH" = evaluation ] || printf '| local | - | %.1f | 1.00 | - |\n' "$LOCAL"

for tasks in 1 2 4; do
    [ "$BENCH" = evaluation ] && break
    rm -rf "$S/models/.vfs-cache"
    J=$T/job$tasks
    mkdir -p "$J"
    cat >"$J/job.sh" <<EOF
#!/bin/sh
export OMP_WAIT_POLICY=passive
exec "$WORKER" extract --store "$S" --images "$T/images.txt" --backbone "$BB" --job-dir "$J" --shard "\$SLURM_ARRAY_TASK_ID/$tasks"
EOF
    t0=$(now)
    sbatch --parsable --array=0-$((tasks - 1)) --cpus-per-task=1 -o "$J/%a.out" "$J/job.sh" >/dev/null
    while [ "$(ls "$J" | grep -c '^done\.')" -lt "$tasks" ]; do sleep 0.2; done
    wall=$(echo "$(now) - $t0" | bc)
    over=$(for i in $(seq 0 $((tasks - 1))); do echo "$(stat -c %.Y "$J/started.$i") - $t0" | bc; done |
        awk '{s += $1; if ($1 > m) m = $1} END {printf "%.2f mean, %.2f max", s / NR, m}')
    printf '| slurm | %d | %.1f | %.2f | %s |\n' "$tasks" "$wall" "$(echo "$LOCAL / $wall" | bc -l)" "$over"
done

[ "$BENCH" = features ] && exit 0

# ---- evaluation --------------------------------------------------------------
FEWSHOT=$(dirname "$WORKER")/bench/bench_fewshot
CLOTHING=$DS/clothing
if [ -z "$DS" ] || [ ! -f "$CLOTHING/train.json" ] || [ ! -x "$FEWSHOT" ]; then
    echo "evaluation bench: needs ../shared/datasets/clothing and $FEWSHOT"
    exit 0
fi
NE=${N_EVAL:-500}
python3 "$ROOT/tests/e2e/mksubset.py" "$CLOTHING" train "$T/k2" 2 >/dev/null
"$FEWSHOT" --root "$T/k2" --train "$T/k2/annotations.json" --backbones "$BB" --budget-min 1 \
    --threads "$(nproc)" --save "$T/model.safetensors" >/dev/null
(cd "$S" && find -L img/clothing/images -name '*.jpg' | sort | head -n "$NE" || true) >"$T/eval.txt"
NE=$(wc -l <"$T/eval.txt")
echo
echo "evaluation of $NE clothing photos by a $BB classifier, one image at a time (evaluations/)"
mkdir -p "$T/ejl"
t0=$(now)
"$WORKER" evaluate --store "$S" --model-file "$T/model.safetensors" --images "$T/eval.txt" \
    --job-dir "$T/ejl" --shard 0/1 --threads "$(nproc)" 2>/dev/null
ELOCAL=$(echo "$(now) - $t0" | bc)
printf '| executor | tasks | wall (s) | speedup vs local | submit -> start per task (s) | overhead per job (s) |\n'
printf '|---|---|---|---|---|---|\n'
printf '| local | - | %.1f | 1.00 | - | - |\n' "$ELOCAL"
for tasks in 1 2 4; do
    J=$T/ejob$tasks
    mkdir -p "$J"
    printf '#!/bin/sh\nexport OMP_WAIT_POLICY=passive\nexec "%s" evaluate --store "%s" --model-file "%s" --images "%s" --job-dir "%s" --shard "$SLURM_ARRAY_TASK_ID/%d"\n' \
        "$WORKER" "$S" "$T/model.safetensors" "$T/eval.txt" "$J" "$tasks" >"$J/job.sh"
    t0=$(now)
    sbatch --parsable --array=0-$((tasks - 1)) --cpus-per-task=1 -o "$J/%a.out" "$J/job.sh" >/dev/null
    while [ "$(ls "$J" | grep -c '^done\.')" -lt "$tasks" ]; do sleep 0.2; done
    wall=$(echo "$(now) - $t0" | bc)
    over=$(for i in $(seq 0 $((tasks - 1))); do echo "$(stat -c %.Y "$J/started.$i") - $t0" | bc; done |
        awk '{s += $1; if ($1 > m) m = $1} END {printf "%.2f mean, %.2f max", s / NR, m}')
    # the job's overhead: its wall time minus the slowest task's own run
    # (the worker's started marker to its done marker)
    run=$(for i in $(seq 0 $((tasks - 1))); do
        echo "$(stat -c %.Y "$J/done.$i") - $(stat -c %.Y "$J/started.$i")" | bc
    done | sort -g | tail -n 1)
    printf '| slurm | %d | %.1f | %.2f | %s | %.2f |\n' "$tasks" "$wall" "$(echo "$ELOCAL / $wall" | bc -l)" \
        "$over" "$(echo "$wall - $run" | bc)"
done
