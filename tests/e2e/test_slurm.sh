# test_slurm.sh: --executor slurm against a real one-machine Slurm cluster
# (slurmctld, two slurmd started with -N node1 / -N node2, munged; all
# state, sockets and logs in the test's temp dir; every daemon stopped by
# the trap). Runs: a classifier whose features come from a 4-task job array
# (the same evaluation and the same answers as the local executor), 200
# images copied into predict/ answered by one job array (the same answers
# as the local executor), the training's test-set evaluation and an
# evaluation of evaluations/ computed by job arrays (the same metrics.json
# and predictions.json as the local executor; tasks in status.json and the
# evaluation's status; removing the folder scancels), a detector whose
# detection features come from an array and whose evaluation of evaluations/
# takes its objects from a job array (the same metrics.json and predictions.json
# as the local executor), a classifier whose search's two fine-tuning candidates
# run as one Slurm job array of `visionfs-worker finetune`, a task per
# candidate, both running at once (the same trials, model.safetensors and
# evaluation as the local executor, also on a clothing subset where a
# fine-tuned tail wins; rm train.json during it scancels; needs
# ../shared/datasets/sign-language-digits, else that part is skipped), a
# multilabel model's evaluation whose scores come from a job array (the same
# metrics.json and predictions.json as local; needs ../shared/datasets/clothing),
# its training's test-set evaluation from an array (the same evaluation.json)
# and 16 images copied into its predict/ answered by an array (the same
# IMAGE.json byte for byte), a detector's test-set evaluation at the end of training
# and 16 images copied into its predict/ from job arrays (the same figures as
# the local evaluation, the same IMAGE.json and IMAGE.boxes.jpg byte for byte),
# tasks shown in status/status.json/log, a task that fails once and is retried,
# a worker that cannot see the store, cancellation (rm train.json ->
# scancel), and a slurmd killed while its tasks run (the model finishes or
# fails clearly; no half-written cache file). Then a second cluster with
# accounting (MariaDB and slurmdbd of its own, in the temp dir): a
# classifier's feature extraction array charged to its budget with the CPU
# time sacct accounts (the first cluster has no database: the workers' own
# count is charged). That part is skipped with a note when slurmdbd or
# mariadb-server is missing, unless VFS_REQUIRE_SLURM is set.
#
# Skips (77) when slurmctld is not installed, unless VFS_REQUIRE_SLURM is
# set (then it fails). scripts/install-deps.sh installs slurm-wlm and munge.
export VFS_E2E_TIMEOUT=${VFS_E2E_TIMEOUT:-1800}
source "$(dirname "$0")/lib.sh"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if [ -n "${VFS_REQUIRE_SLURM:-}" ]; then
        echo "FAIL: slurmctld or munged missing (apt-get install slurm-wlm munge)"
        exit 1
    fi
    echo "skipped: slurmctld or munged not installed (apt-get install slurm-wlm munge)"
    exit 77
fi
need_backbone efficientnet-lite0 centernet
WORKER=$(dirname "$VFS_BIN")/visionfs-worker
[ -x "$WORKER" ] || { echo "no visionfs-worker next to $VFS_BIN"; exit 1; }

# ---- the cluster -------------------------------------------------------------
source "$E2E_DIR/slurm_cluster.sh"
all_cleanup() {
    cluster_stop
    vfs_cleanup
}
trap all_cleanup EXIT
check "cluster up: two idle nodes" cluster_start "$T/cluster"
C=$T/cluster

# ---- data --------------------------------------------------------------------
$MK cls "$SRC/train" 6 1
$MK cls "$SRC/test" 3 2
$MK cls "$SRC/big" 20 3
mkdir -p "$SRC/probe"
for c in disc stripes checker; do $MK one "$SRC/probe/$c.png" $c 77; done
python3 "$E2E_DIR/test_detect_mkdata.py" det "$SRC/dtrain" 8 4 >/dev/null
python3 "$E2E_DIR/test_detect_mkdata.py" det "$SRC/dprobe" 15 9 >/dev/null # 16 images: a burst
$MK cls "$SRC/bulkset" 67 5
mkdir -p "$SRC/bulk"
ls "$SRC/bulkset/images" | head -n 200 | while read -r f; do mv "$SRC/bulkset/images/$f" "$SRC/bulk/"; done

add_datasets() {
    local d
    for d in "$@"; do
        mkdir "$MNT/datasets/$d"
        cp -r "$SRC/$d/." "$MNT/datasets/$d/"
    done
    for d in "$@"; do
        check "dataset $d ready" wait_status "$MNT/datasets/$d/status" ready 60
    done
}
# answers of model $1 for the probe images, confidences only
answers() {
    local f
    for f in "$SRC"/probe/*.png; do
        cp "$f" "$MNT/models/$1/predict/"
    done
    for f in "$SRC"/probe/*.png; do
        jq -c '.customModelResult' \
            "$MNT/models/$1/predict/$(basename "$f").json"
    done
}
# extra_passes REF_LOG SLURM_LOG: the search's passes beyond the first (a
# second input scale, flipped or cropped copies) in the local log, and that
# the Slurm run's log shows each of them computed by the workers; prints N
extra_passes() {
    python3 - "$1" "$2" <<'PY'
import re, sys
pat = re.compile(r"features (\S+)@(\d+)( flipped| cropped)?: \d+ images")
def passes(path):
    out, first = [], {}
    for line in open(path):
        m = pat.search(line)
        if m:
            first.setdefault(m.group(1), int(m.group(2)))
            if m.group(3) or int(m.group(2)) != first[m.group(1)]:
                out.append((m.group(1), m.group(2), m.group(3), "computed by the Slurm workers" in line))
    return out
ref, sl = passes(sys.argv[1]), passes(sys.argv[2])
assert [r[:3] for r in ref] == [x[:3] for x in sl], (ref, sl)
assert all(x[3] for x in sl), sl
print(len(sl))
PY
}
eval_of() {
    jq -S 'del(.trainingCostInMinutes)' "$MNT/models/$1/evaluation.json"
}
REQ='{"dataset": "train", "test_dataset": "test", "budget_minutes": 3}'

# ---- the local executor: the reference --------------------------------------
vfs_mount
add_datasets train test big
mkdir "$MNT/models/ref"
echo "$REQ" >"$MNT/models/ref/train.json"
check "local: trained" wait_status "$MNT/models/ref/status" succeeded 240
eval_of ref >"$T/ref.eval"
cp "$MNT/models/ref/log" "$T/ref.log"
mkdir "$MNT/models/ref/evaluations/test"
check "local: evaluation on test" wait_status "$MNT/models/ref/evaluations/test/status" succeeded 120
cp "$MNT/models/ref/evaluations/test/metrics.json" "$T/ref.emetrics"
cp "$MNT/models/ref/evaluations/test/predictions.json" "$T/ref.epreds"
answers ref >"$T/ref.answers"
cp "$SRC"/bulk/*.png "$MNT/models/ref/predict/"
for f in "$SRC"/bulk/*.png; do
    jq -c '{metadata, customModelResult}' "$MNT/models/ref/predict/$(basename "$f").json"
done >"$T/ref.bulk"
# a detector, the reference for its head training on the cluster (a budget
# the search never reaches, so that no fit is cut by the CPU clock)
DETREQ='{"dataset": "dtrain", "test_dataset": "dtrain", "budget_minutes": 5}'
add_datasets dtrain
mkdir "$MNT/models/detref"
echo "$DETREQ" >"$MNT/models/detref/train.json"
check "detector, local: trained" wait_status "$MNT/models/detref/status" succeeded 300
cp "$MNT/models/detref/model.safetensors" "$T/detref.model"
eval_of detref >"$T/detref.eval"
grep -E "^[^ ]+ [^ ]+ (variant|chosen)" "$MNT/models/detref/log" >"$T/detref.variants"
vfs_umount
rm -rf "$STORE/models/.vfs-cache" # the cluster must compute every feature

# ---- the Slurm executor -------------------------------------------------------
vfs_mount --executor slurm --slurm-tasks 4 --slurm-args "--cpus-per-task=1"
M=$MNT/models/sl
mkdir "$M"
echo "$REQ" >"$M/train.json"
seen_tasks=0
for i in $(seq 100); do
    n=$(jq '.slurm.tasks | length' "$M/status.json" 2>/dev/null || echo 0)
    [ "${n:-0}" -gt 0 ] && { seen_tasks=$n; cp "$M/status.json" "$T/sl.status.json"; cp "$M/status" "$T/sl.status"; break; }
    sleep 0.1
done
check_eq "status.json lists 4 array tasks" 4 "$seen_tasks"
check "status names the slurm job and the task states" \
    grep -Eq "slurm job [0-9]+: [0-9]+ (PENDING|RUNNING)" "$T/sl.status"
check "tasks have job ids, states and queued time" jqe \
    '.slurm.tasks | all(.jobId | test("^[0-9]+_[0-3]$")) and all(.state | length > 0) and all(.queuedSeconds >= 0)' \
    "$T/sl.status.json"
check "slurm: trained" wait_status "$M/status" succeeded 240
check "log: submitted as a 4-task array" grep -Eq "submitted as job array [0-9]+ \(4 tasks\)" "$M/log"
# a task the daemon's poll first sees finished is logged "COMPLETED on nodeN", not RUNNING
ran_on() { grep -Eq "\(job [0-9]+_[0-9]+\) (RUNNING|COMPLETING|COMPLETED) on $2( |\$)" "$1"; }
if ran_on "$M/log" node1 && ran_on "$M/log" node2; then
    ok "log: tasks ran on node1 and node2"
else
    bad "log: tasks ran on node1 and node2"
    grep "slurm: task" "$M/log" >&2
fi
check "log: training found the features in the cache" \
    grep -Eq "features [^:]+: ([0-9]+) images \(\1 from cache\)" "$M/log"
check "log: the budget counts the workers' CPU time" \
    grep -Eq "budget: [0-9.]+ of 180.0 CPU s spent by the Slurm workers" "$M/log"
check "log: without an accounting database the workers' own count is charged" \
    grep -Eq "budget: [0-9.]+ CPU s reported by the workers \(sacct: Slurm accounting storage is disabled\)" "$M/log"
grep -m1 "reported by the workers" "$M/log" | sed -E 's/^[^ ]+ [^ ]+ /note: no accounting: /' || true
check "status.json has no slurm section after the run" jqe '.slurm == null' "$M/status.json"
eval_of sl >"$T/sl.eval"
check "same evaluation as the local executor" cmp -s "$T/ref.eval" "$T/sl.eval"
n=$(extra_passes "$T/ref.log" "$M/log")
check "the search's extra passes (second scale, augmented copies) came from arrays" test -n "$n"
echo "note: $n extra pass(es) of the search extracted by job arrays"
answers sl >"$T/sl.answers"
check "same answers as the local executor" cmp -s "$T/ref.answers" "$T/sl.answers"
check "log: the test-set evaluation ran as a 4-task array" \
    grep -Eq "slurm: evaluation on test \([0-9]+ images\) submitted as job array [0-9]+ \(4 tasks\)" "$M/log"
check "log: training took the test probabilities from the workers" \
    grep -q "the probabilities came from the Slurm workers" "$M/log"

# evaluations/: the probabilities from a job array, the metrics in the daemon
mkdir "$M/evaluations/test"
seen_tasks=0 seen_line=0
for i in $(seq 400); do
    if [ "$seen_tasks" = 0 ]; then
        n=$(jq '.slurmEvaluation.tasks | length' "$M/status.json" 2>/dev/null || echo 0)
        [ "${n:-0}" -gt 0 ] && { seen_tasks=$n; cp "$M/status.json" "$T/ev.status.json"; }
    fi
    if [ "$seen_line" = 0 ] && grep -Eq "^running slurm job [0-9]+: [0-9]+ (PENDING|RUNNING|COMPLETED)" \
        "$M/evaluations/test/status" 2>/dev/null; then
        seen_line=1
    fi
    [ "$seen_tasks" != 0 ] && [ "$seen_line" = 1 ] && break
    grep -q succeeded "$M/evaluations/test/status" 2>/dev/null && break
    sleep 0.05
done
check_eq "evaluation: status.json lists its 4 array tasks" 4 "$seen_tasks"
check "evaluation: its stage and job ids" jqe \
    '.slurmEvaluation.stage == "evaluation of test" and (.slurmEvaluation.tasks | all(.jobId | test("^[0-9]+_[0-3]$")))' \
    "$T/ev.status.json"
check_eq "evaluation: its status names the slurm job and its tasks" 1 "$seen_line"
check "evaluation: succeeded" wait_status "$M/evaluations/test/status" succeeded 120
check "evaluation: same metrics.json as the local executor" \
    cmp "$T/ref.emetrics" "$M/evaluations/test/metrics.json"
check "evaluation: same predictions.json as the local executor" \
    cmp "$T/ref.epreds" "$M/evaluations/test/predictions.json"
check "evaluation: log names its array" \
    grep -Eq "slurm: evaluation of test \([0-9]+ images\) submitted as job array [0-9]+ \(4 tasks\)" "$M/log"
check "evaluation: status.json has no slurmEvaluation after it" jqe '.slurmEvaluation == null' "$M/status.json"
check "the job folder is gone" test -z "$(find "$STORE/.tmp" -name job.sh)"

# bulk prediction: 200 images copied at once become one job array
cp "$SRC"/bulk/*.png "$M/predict/"
for f in "$SRC"/bulk/*.png; do
    jq -c '{metadata, customModelResult}' "$M/predict/$(basename "$f").json"
done >"$T/sl.bulk"
check_eq "bulk: 200 answers" 200 "$(grep -c tagsResult "$T/sl.bulk")"
check "bulk: same answers as the local executor" cmp -s "$T/ref.bulk" "$T/sl.bulk"
check "bulk: one job array for the burst" \
    grep -Eq "slurm: prediction of 200 images submitted as job array [0-9]+ \(4 tasks\)" "$M/log"
check "bulk: every answer came from the cluster" \
    grep -q "slurm: 200 of 200 answers came from the cluster" "$M/log"
check "bulk: a single image is answered in the daemon" cp "$SRC/probe/disc.png" "$M/predict/single.png"
check "bulk: its answer" jqe '.customModelResult.tagsResult.values[0].name == "disc"' \
    "$M/predict/single.png.json"

# ---- a detector: its detection features from the array ---------------------------
mkdir "$MNT/models/det"
echo '{"dataset": "dtrain", "test_dataset": "dtrain", "budget_minutes": 0.3}' >"$MNT/models/det/train.json"
check "detector: trained" wait_status "$MNT/models/det/status" succeeded 240
check "detector: features submitted as an array" \
    grep -Eq "slurm: feature extraction \([0-9]+ images, detection features\) submitted as job array" \
    "$MNT/models/det/log"
check "detector: training computed no feature itself" \
    grep -Eq "features of [0-9]+ training images \(0 computed" "$MNT/models/det/log"
check "detector: the evaluation on its test dataset was an array" \
    grep -Eq "slurm: evaluation on dtrain \([0-9]+ images\) submitted as job array [0-9]+ \(4 tasks\)" \
    "$MNT/models/det/log"
cp "$MNT/models/det/evaluation.json" "$T/det.training.eval"
grep -E "slurm: (job array [0-9]+ done in|[0-9]+ objects in)" "$MNT/models/det/log" | sed 's/^/note: detector training: /'

# the same request as the local reference: every head fit on the cluster,
# a job array per variant of the search (a task per fold) and one for the
# final fit, and the very model and evaluation of the local executor
D2=$MNT/models/detsl
mkdir "$D2"
echo "$DETREQ" >"$D2/train.json"
seen=0
for i in $(seq 3000); do
    if jqe '.slurm.stage == "head training" and (.slurm.tasks | length) > 1' "$D2/status.json" 2>/dev/null; then
        cp "$D2/status.json" "$T/dfit.status.json"
        cp "$D2/status" "$T/dfit.status"
        seen=1
        break
    fi
    grep -Eq "^(succeeded|failed)" "$D2/status" 2>/dev/null && break
    sleep 0.1
done
check_eq "detector head training: status.json shows an array (stage head training)" 1 "$seen"
check "detector head training: status.json lists a task per fold, with job ids" jqe \
    '(.slurm.tasks | length) == 4 and ([.slurm.tasks[].jobId | test("^[0-9]+_[0-3]$")] | all)' \
    "$T/dfit.status.json"
check "detector head training: status names the job" \
    grep -Eq "slurm job [0-9]+: ([0-9]+ (PENDING|RUNNING|COMPLETED)(, )?)+" "$T/dfit.status"
check "detector head training: trained" wait_status "$D2/status" succeeded 400
nfolds=$(grep -Ec "slurm: head training of [a-z0-9 -]+ heatmap, 4 folds \([0-9]+ images\) submitted as job array [0-9]+ \(4 tasks\)" "$D2/log" || true)
check "detector head training: log: each variant's 4 folds as one array of 4 tasks" \
    test "$nfolds" -ge 2
check_eq "detector head training: log: the final fit as an array of 1 task" 1 \
    "$(grep -Ec "slurm: head training of .*, final fit \([0-9]+ images\) submitted as job array [0-9]+ \(1 task" "$D2/log")"
check "detector head training: log: the workers' CPU time" \
    grep -Eq "slurm: head training of .* done, [0-9.]+ CPU s on the nodes \(task 0 [0-9.]+, task 1 [0-9.]+" "$D2/log"
check "detector head training: every fit ran on the cluster" \
    test "$(grep -Ec "variant .*: [0-9]+ images, [0-9]+ of [0-9]+ steps" "$D2/log")" = \
    "$(grep -Ec "variant .*: [0-9]+ images, [0-9]+ of [0-9]+ steps.* on the cluster" "$D2/log")"
grep -E "slurm: head training of .* (submitted|done)" "$D2/log" | sed 's/^/note: detector head training: /'
grep -E "^[^ ]+ [^ ]+ (variant|chosen)" "$D2/log" >"$T/detsl.variants"
# (the CPU seconds vary from run to run)
unclocked() { sed -E 's/^[^ ]+ [^ ]+ //; s/, [0-9.]+ s CPU( on the cluster)?$//' "$1"; }
check "detector head training: the same fits, scores and choice as the local executor" \
    diff <(unclocked "$T/detref.variants") <(unclocked "$T/detsl.variants")
check "detector head training: the same model.safetensors as the local executor" \
    cmp "$T/detref.model" "$D2/model.safetensors"
eval_of detsl >"$T/detsl.eval"
check "detector head training: the same evaluation as the local executor" \
    cmp "$T/detref.eval" "$T/detsl.eval"
check "detector head training: the job folders are gone" test -z "$(find "$STORE/.tmp" -name 'job.*.json')"
# rm train.json while a head-training array runs: scancel, cancelled
mkdir "$MNT/models/detc"
echo "$DETREQ" >"$MNT/models/detc/train.json"
check "detector head training, cancel: an array is queued or running" \
    wait_jq "$MNT/models/detc/status.json" '.slurm.stage' "head training" 120
djob=$(jq -r '.slurm.jobId' "$MNT/models/detc/status.json")
rm "$MNT/models/detc/train.json"
check "detector head training, cancel: cancelled" wait_status "$MNT/models/detc/status" cancelled 30
check "detector head training, cancel: log says scancel" \
    grep -q "cancelled job array $djob (scancel)" "$MNT/models/detc/log"

# 16 images copied into its predict/: one job array, answers and drawings
# moved into predict/ by the daemon
cp "$SRC"/dprobe/images/*.png "$MNT/models/det/predict/"
answered=0
for f in "$SRC"/dprobe/images/*.png; do
    jqe '.customModelResult.objectsResult.values | type == "array"' \
        "$MNT/models/det/predict/$(basename "$f").json" && answered=$((answered + 1))
done
check_eq "detector predict: 16 images answered" 16 "$answered"
check "detector predict: a 16-image array" \
    grep -Eq "slurm: prediction of 16 images submitted as job array [0-9]+ \(4 tasks\)" "$MNT/models/det/log"
check "detector predict: every answer came from the cluster" \
    grep -q "slurm: 16 of 16 answers came from the cluster" "$MNT/models/det/log"
mkdir -p "$T/dpred.sl"
for f in "$SRC"/dprobe/images/*.png; do
    b=$(basename "$f")
    cp "$MNT/models/det/predict/$b.json" "$MNT/models/det/predict/$b.boxes.jpg" "$T/dpred.sl/"
done
grep -E "slurm: job array [0-9]+ done in" "$MNT/models/det/log" | tail -n 1 | sed 's/^/note: detector predict: /'
check "detector predict: boxes were found" \
    bash -c 'cat "$1"/*.json | jq -s "map(.customModelResult.objectsResult.values | length) | add > 0" | grep -q true' _ "$T/dpred.sl"

# its evaluations/: the objects of each image from a job array, the metrics in
# the daemon; the same files as the local executor's
D=$MNT/models/det
mkdir "$D/evaluations/dtrain"
seen_tasks=0
for i in $(seq 600); do
    n=$(jq '.slurmEvaluation.tasks | length' "$D/status.json" 2>/dev/null || echo 0)
    [ "${n:-0}" -gt 0 ] && { seen_tasks=$n; cp "$D/status.json" "$T/dev.status.json"; break; }
    grep -q succeeded "$D/evaluations/dtrain/status" 2>/dev/null && break
    sleep 0.05
done
check_eq "detector evaluation: status.json lists its 4 array tasks" 4 "$seen_tasks"
check "detector evaluation: its stage and job ids" jqe \
    '.slurmEvaluation.stage == "evaluation of dtrain" and (.slurmEvaluation.tasks | all(.jobId | test("^[0-9]+_[0-3]$")))' \
    "$T/dev.status.json"
check "detector evaluation: succeeded" wait_status "$D/evaluations/dtrain/status" succeeded 240
check "detector evaluation: log names its array" \
    grep -Eq "slurm: evaluation of dtrain \([0-9]+ images\) submitted as job array [0-9]+ \(4 tasks\)" "$D/log"
check "detector evaluation: the objects came from the nodes" \
    grep -Eq "slurm: [1-9][0-9]* objects in [0-9]+ images found" "$D/log"
check "detector evaluation: boxes were predicted" jqe 'length > 0' "$D/evaluations/dtrain/predictions.json"
for f in metrics.json predictions.json; do cp "$D/evaluations/dtrain/$f" "$T/dsl.$f"; done
check "detector evaluation: the job folder is gone" test -z "$(find "$STORE/.tmp" -name job.sh)"
vfs_umount
vfs_mount
rm -r "$D/evaluations/dtrain"
mkdir "$D/evaluations/dtrain"
check "detector evaluation, local: succeeded" wait_status "$D/evaluations/dtrain/status" succeeded 240
for f in metrics.json predictions.json; do
    check "detector evaluation: the same $f as the local executor" cmp "$T/dsl.$f" "$D/evaluations/dtrain/$f"
done
# the end-of-training evaluation on dtrain (objects from the array) is the
# local evaluation of the same model on the same images: evaluation.json's
# figures are metrics.json's (evaluation.json adds the training's cost,
# stop reason and recipe)
common() { jq -S --slurpfile m "$2" 'with_entries(select(.key as $k | $m[0] | has($k)))' "$1"; }
check "detector: evaluation.json has the figures" jqe '.meanAveragePrecision50 != null and .evaluatedOn.dataset == "dtrain"' "$T/det.training.eval"
check "detector: the end-of-training evaluation equals the local executor's" \
    diff <(common "$T/det.training.eval" "$D/evaluations/dtrain/metrics.json") <(jq -S . "$D/evaluations/dtrain/metrics.json")
# the same images answered in the daemon: the same files, byte for byte
# (read through cat: opening a result waits for it, but a size the kernel
# cached for the empty placeholder may still show, which cmp would trust)
for f in "$SRC"/dprobe/images/*.png; do cp "$f" "$D/predict/local-$(basename "$f")"; done
same=0
for f in "$SRC"/dprobe/images/*.png; do
    b=$(basename "$f")
    cat "$D/predict/local-$b.json" >"$T/local.json"
    cat "$D/predict/local-$b.boxes.jpg" >"$T/local.jpg"
    cmp -s "$T/dpred.sl/$b.json" "$T/local.json" && cmp -s "$T/dpred.sl/$b.boxes.jpg" "$T/local.jpg" &&
        same=$((same + 1))
done
check_eq "detector predict: the same IMAGE.json and IMAGE.boxes.jpg as the local executor" 16 "$same"
vfs_umount

# ---- the fine-tuning candidates as one Slurm job array ---------------------------
# sign-language-digits at 2 images per category with efficientnet-lite0 alone
# (a backbone folder of links): the search does not reach a perfect validated
# accuracy and tries its two fine-tuning candidates (two taps); with the Slurm
# executor they run as one job array of `visionfs-worker finetune` (a task
# per candidate, on the two nodes at once), and the model is byte for byte
# the local one
SLD=
for d in /work/shared/datasets/sign-language-digits "$E2E_DIR/../../../shared/datasets/sign-language-digits"; do
    [ -f "$d/train.json" ] && SLD=$d && break
done
if [ -z "$SLD" ]; then
    echo "note: ../shared/datasets/sign-language-digits absent: the fine-tuning part is skipped"
else
    python3 "$E2E_DIR/mksubset.py" "$SLD" train "$SRC/ft" 2 >/dev/null
    python3 "$E2E_DIR/mksubset.py" "$SLD" test "$SRC/fttest" 2 >/dev/null
    # a multilabel model (clothing, two tags per image) evaluated in
    # evaluations/: its scores from a job array, the same files as local
    CLOTHING=$(dirname "$SLD")/clothing
    [ -f "$CLOTHING/train.json" ] && python3 "$E2E_DIR/mkmultilabel.py" "$CLOTHING" train "$SRC/ml" 4 0 >/dev/null
    # (a budget that fits both candidates' first estimates together, also
    # in the sanitizer build, where the search is several times slower: at 4
    # minutes there the array held the first candidate alone)
    FTREQ='{"dataset": "ft", "test_dataset": "fttest", "budget_minutes": 8}'
    mkdir -p "$T/bb1"
    ln -s "$(backbones_dir)/efficientnet-lite0" "$T/bb1/efficientnet-lite0"
    rm -rf "$STORE/models/.vfs-cache"
    VISIONFS_BACKBONES=$T/bb1 vfs_mount
    add_datasets ft fttest
    mkdir "$MNT/models/ftref"
    echo "$FTREQ" >"$MNT/models/ftref/train.json"
    check "fine-tuning, local: trained" wait_status "$MNT/models/ftref/status" succeeded 400
    check "fine-tuning, local: the search tried a fine-tuned tail" \
        grep -Eq "trial [0-9]+/[0-9]+ fine-tuned efficientnet-lite[0-9] from" "$MNT/models/ftref/log"
    # whether the tail wins is the search's call on the data (since the
    # second input scale joins the first, the linear head wins here); the
    # checks below hold either way: same candidates, scores and model
    if grep -q "linear head replaced" "$MNT/models/ftref/log"; then
        echo "note: fine-tuning: the fine-tuned tail won"
    else
        echo "note: fine-tuning: the linear head won"
    fi
    eval_of ftref >"$T/ftref.eval"
    cp "$MNT/models/ftref/model.safetensors" "$T/ftref.model"
    if [ -d "$SRC/ml" ]; then
        add_datasets ml
        mkdir "$MNT/models/ml"
        MLREQ='{"dataset": "ml", "test_dataset": "ml", "budget_minutes": 1}'
        echo "$MLREQ" >"$MNT/models/ml/train.json"
        check "multilabel, local: trained" wait_status "$MNT/models/ml/status" succeeded 300
        eval_of ml >"$T/ml.eval"
        mkdir "$MNT/models/ml/evaluations/ml"
        check "multilabel, local: evaluated" wait_status "$MNT/models/ml/evaluations/ml/status" succeeded 120
        cp "$MNT/models/ml/evaluations/ml/metrics.json" "$T/ml.metrics"
        cp "$MNT/models/ml/evaluations/ml/predictions.json" "$T/ml.preds"
        rm -r "$MNT/models/ml/evaluations/ml"
        # 16 of its images answered in the daemon, for the Slurm burst below
        ls "$SRC/ml/images" | head -n 16 >"$T/ml.burst"
        mkdir -p "$T/mlpred.local"
        while read -r b; do cp "$SRC/ml/images/$b" "$MNT/models/ml/predict/$b"; done <"$T/ml.burst"
        while read -r b; do cat "$MNT/models/ml/predict/$b.json" >"$T/mlpred.local/$b.json"; done <"$T/ml.burst"
    fi
    # clothing at 2 images per category: there the fine-tuned tails win (the
    # second candidate's, averaged with the linear head), so the model holds
    # a tail trained by a task of the array
    if [ -f "$CLOTHING/train.json" ]; then
        python3 "$E2E_DIR/mksubset.py" "$CLOTHING" train "$SRC/cw" 2 >/dev/null
        python3 "$E2E_DIR/mksubset.py" "$CLOTHING" test "$SRC/cwtest" 2 >/dev/null
        add_datasets cw cwtest
        CWREQ='{"dataset": "cw", "test_dataset": "cwtest", "budget_minutes": 6}'
        mkdir "$MNT/models/cwref"
        echo "$CWREQ" >"$MNT/models/cwref/train.json"
        check "fine-tuning, clothing, local: trained" wait_status "$MNT/models/cwref/status" succeeded 600
        grep -E "fine-tuned|winner" "$MNT/models/cwref/log" >"$T/cwref.trials"
        cp "$MNT/models/cwref/model.safetensors" "$T/cwref.model"
        eval_of cwref >"$T/cwref.eval"
    fi
    grep -E "fine-tuned|winner" "$MNT/models/ftref/log" >"$T/ftref.trials"
    nft=$(grep -Ec "trial [0-9]+/[0-9]+ fine-tuned" "$MNT/models/ftref/log" || true)
    check_eq "fine-tuning, local: both candidates tried (one after the other)" 2 "$nft"
    cp "$MNT/models/ftref/log" "$T/ftref.log"
    vfs_umount
    rm -rf "$STORE/models/.vfs-cache" # the maps of the copies from the worker

    VISIONFS_BACKBONES=$T/bb1 vfs_mount --executor slurm --slurm-tasks 2 --slurm-args "--cpus-per-task=1"
    F=$MNT/models/ftsl
    mkdir "$F"
    echo "$FTREQ" >"$F/train.json"
    seen=0
    for i in $(seq 3000); do
        if jqe '.slurm.stage == "fine-tuning" and (.slurm.tasks | length) > 0' "$F/status.json" 2>/dev/null; then
            cp "$F/status.json" "$T/ft.status.json"
            cp "$F/status" "$T/ft.status"
            seen=1
            break
        fi
        grep -Eq "^(succeeded|failed)" "$F/status" 2>/dev/null && break
        sleep 0.1
    done
    check_eq "fine-tuning, slurm: status.json shows the array (stage fine-tuning)" 1 "$seen"
    check "fine-tuning, slurm: status.json lists a task per candidate, with job ids" jqe \
        '(.slurm.tasks | length) == 2 and ([.slurm.tasks[].jobId | test("^[0-9]+_[01]$")] | all)' \
        "$T/ft.status.json"
    check "fine-tuning, slurm: status names the job" \
        grep -Eq "slurm job [0-9]+: ([0-9]+ (PENDING|RUNNING|COMPLETED)(, )?)+" "$T/ft.status"
    check "fine-tuning, slurm: trained" wait_status "$F/status" succeeded 400
    check_eq "fine-tuning, slurm: log: the candidates submitted as one array of 2 tasks" 1 \
        "$(grep -Ec "slurm: fine-tuning of efficientnet-lite[0-9] from [^ ]+ and [^ ]+ \(20 images\) submitted as job array [0-9]+ \(2 tasks\)" "$F/log")"
    check_eq "fine-tuning, slurm: log: no other fine-tuning job" 1 \
        "$(grep -c "slurm: fine-tuning of .* submitted as job array" "$F/log")"
    check "fine-tuning, slurm: log: the workers' CPU time" \
        grep -Eq "slurm: fine-tuning of efficientnet-lite[0-9] from [^ ]+ and [^ ]+ \(20 images\) done, [0-9.]+ CPU s on the nodes \(task 0 [0-9.]+, task 1 [0-9.]+\)" "$F/log"
    # both tasks were running before either ended: the cluster ran the two
    # candidates at the same time
    ftjob=$(sed -nE 's/.*slurm: fine-tuning of .* submitted as job array ([0-9]+) .*/\1/p' "$F/log" | head -n 1)
    check "fine-tuning, slurm: both candidates ran at once (task 0 and 1 RUNNING before either ended)" \
        python3 - "$F/log" "${ftjob:-x}" <<'PY'
import re, sys
job = sys.argv[2]
running, ended = set(), None
for line in open(sys.argv[1]):
    m = re.search(r"slurm: task ([01]) \(job %s_[01]\) (\w+)" % re.escape(job), line)
    if not m:
        continue
    if m.group(2) == "RUNNING":
        running.add(m.group(1))
    elif m.group(2) not in ("PENDING", "CONFIGURING") and ended is None:
        ended = set(running)
sys.exit(0 if ended == {"0", "1"} else 1)
PY
    grep -E "slurm: (task [01] \(job ${ftjob:-x}_|fine-tuning of .* done)" "$F/log" | sed 's/^/note: fine-tuning: /'
    grep -E "fine-tuned|winner" "$F/log" >"$T/ftsl.trials"
    n=$(extra_passes "$T/ftref.log" "$F/log")
    check "fine-tuning, slurm: the search's extra passes came from arrays" test -n "$n"
    echo "note: fine-tuning: $n extra pass(es) of the search extracted by job arrays"
    grep -E "computed by the Slurm workers|slurm: feature extraction \([0-9]+ images, [^)]*@" "$F/log" | sed 's/^/note: fine-tuning: /'
    grep -E "slurm: job array [0-9]+ done in" "$F/log" | sed 's/^/note: fine-tuning: /'
    # (the CPU seconds and the budget estimates vary from run to run)
    untimed() { sed -E 's/^[^ ]+ [^ ]+ //; s/\([0-9.]+ CPU s\)//; s/about [0-9]+ CPU s, [0-9]+ left/about N CPU s, N left/' "$1"; }
    check "fine-tuning, slurm: the same candidates and scores as the local executor" \
        diff <(untimed "$T/ftref.trials") <(untimed "$T/ftsl.trials")
    check "fine-tuning, slurm: the same model.safetensors as the local executor" \
        cmp "$T/ftref.model" "$F/model.safetensors"
    eval_of ftsl >"$T/ftsl.eval"
    check "fine-tuning, slurm: the same evaluation as the local executor" cmp "$T/ftref.eval" "$T/ftsl.eval"
    check "fine-tuning, slurm: the job folders are gone" test -z "$(find "$STORE/.tmp" -name 'job.*.json')"
    if [ -f "$T/cwref.model" ]; then
        mkdir "$MNT/models/cwsl"
        echo "$CWREQ" >"$MNT/models/cwsl/train.json"
        check "fine-tuning, clothing, slurm: trained" wait_status "$MNT/models/cwsl/status" succeeded 600
        check_eq "fine-tuning, clothing, slurm: log: one array of 2 tasks" 1 \
            "$(grep -Ec "slurm: fine-tuning of efficientnet-lite[0-9] from [^ ]+ and [^ ]+ \([0-9]+ images\) submitted as job array [0-9]+ \(2 tasks\)" "$MNT/models/cwsl/log")"
        # the point of this part: if a change of the search makes the linear
        # head win here, pick a subset where a tail wins
        check "fine-tuning, clothing: a fine-tuned tail won (the model holds one)" \
            grep -Eq "linear head (averaged with the fine-tuned one|replaced)" "$MNT/models/cwsl/log"
        grep -E "winner" "$MNT/models/cwsl/log" | sed -E 's/^[^ ]+ [^ ]+ /note: fine-tuning, clothing: /'
        grep -E "fine-tuned|winner" "$MNT/models/cwsl/log" >"$T/cwsl.trials"
        check "fine-tuning, clothing, slurm: the same candidates and scores as the local executor" \
            diff <(untimed "$T/cwref.trials") <(untimed "$T/cwsl.trials")
        check "fine-tuning, clothing, slurm: the same model.safetensors as the local executor" \
            cmp "$T/cwref.model" "$MNT/models/cwsl/model.safetensors"
        eval_of cwsl >"$T/cwsl.eval"
        check "fine-tuning, clothing, slurm: the same evaluation as the local executor" \
            cmp "$T/cwref.eval" "$T/cwsl.eval"
    else
        echo "note: ../shared/datasets/clothing absent: the fine-tuned tail from an array is not compared"
    fi

    if [ -d "$SRC/ml" ]; then
        mkdir "$MNT/models/ml/evaluations/ml"
        check "multilabel, slurm: evaluated" wait_status "$MNT/models/ml/evaluations/ml/status" succeeded 200
        check "multilabel, slurm: its scores came from a job array" \
            grep -Eq "slurm: evaluation of ml \([0-9]+ images\) submitted as job array [0-9]+ \(2 tasks\)" "$MNT/models/ml/log"
        check "multilabel, slurm: the same metrics.json as the local executor" \
            cmp "$T/ml.metrics" "$MNT/models/ml/evaluations/ml/metrics.json"
        check "multilabel, slurm: the same predictions.json as the local executor" \
            cmp "$T/ml.preds" "$MNT/models/ml/evaluations/ml/predictions.json"
        # the same 16 images copied at once into its predict/ under new names:
        # one job array answers them, byte for byte the daemon's answers
        while read -r b; do cp "$SRC/ml/images/$b" "$MNT/models/ml/predict/sl-$b"; done <"$T/ml.burst"
        same=0
        while read -r b; do
            cmp -s "$T/mlpred.local/$b.json" "$MNT/models/ml/predict/sl-$b.json" && same=$((same + 1))
        done <"$T/ml.burst"
        check "multilabel predict: a 16-image array" \
            grep -Eq "slurm: prediction of 16 images submitted as job array [0-9]+ \([0-9]+ tasks\)" "$MNT/models/ml/log"
        check "multilabel predict: every answer came from the cluster" \
            grep -q "slurm: 16 of 16 answers came from the cluster" "$MNT/models/ml/log"
        check_eq "multilabel predict: the same IMAGE.json as the local executor" 16 "$same"
        check "multilabel predict: the answers name tags" \
            bash -c 'cat "$1"/*.json | jq -s "map(.customModelResult.tagsResult.values | length) | add > 0" | grep -q true' _ "$T/mlpred.local"
        # trained with the Slurm executor: the end-of-training evaluation's
        # scores from an array (through the cache the array filled)
        mkdir "$MNT/models/mlsl"
        echo "$MLREQ" >"$MNT/models/mlsl/train.json"
        check "multilabel, slurm: trained" wait_status "$MNT/models/mlsl/status" succeeded 300
        check "multilabel, slurm: the test-set scores came from an array" \
            grep -Eq "slurm: evaluation on ml \([0-9]+ images\) submitted as job array [0-9]+ \(2 tasks\)" "$MNT/models/mlsl/log"
        eval_of mlsl >"$T/mlsl.eval"
        grep -E "slurm: (job array [0-9]+ done in|[0-9]+ probabilities computed)" "$MNT/models/mlsl/log" | sed 's/^/note: multilabel training: /'
        check "multilabel, slurm: the same evaluation.json as the local executor" cmp "$T/ml.eval" "$T/mlsl.eval"
    fi

    # rm train.json while a candidate's job runs: scancel, cancelled
    mkdir "$MNT/models/ftc"
    echo "$FTREQ" >"$MNT/models/ftc/train.json"
    check "fine-tuning, cancel: the candidate's job is queued or running" \
        wait_jq "$MNT/models/ftc/status.json" '.slurm.stage' fine-tuning 300
    fjob=$(jq -r '.slurm.jobId' "$MNT/models/ftc/status.json")
    rm "$MNT/models/ftc/train.json"
    check "fine-tuning, cancel: cancelled" wait_status "$MNT/models/ftc/status" cancelled 30
    check "fine-tuning, cancel: log says scancel" grep -q "cancelled job array $fjob (scancel)" "$MNT/models/ftc/log"
    vfs_umount
fi

# ---- a task that fails once is retried -----------------------------------------
cat >"$T/flaky-worker" <<EOF
#!/bin/sh
# fails the first run of task 1, then behaves
if [ "\$SLURM_ARRAY_TASK_ID" = 1 ] && [ ! -e "$T/flaked" ]; then
    touch "$T/flaked"; echo "flaky: simulated crash" >&2; exit 9
fi
exec "$WORKER" "\$@"
EOF
chmod +x "$T/flaky-worker"
rm -rf "$STORE/models/.vfs-cache"
vfs_mount --executor slurm --slurm-tasks 2 --slurm-worker "$T/flaky-worker"
mkdir "$MNT/models/flaky"
echo '{"dataset": "train", "budget_minutes": 2}' >"$MNT/models/flaky/train.json"
check "flaky task: trained" wait_status "$MNT/models/flaky/status" succeeded 240
check "log: the failed task was retried" \
    grep -Eq "task 1 \(job [0-9]+_1\) ended FAILED.*simulated crash; try 2 of 3" "$MNT/models/flaky/log"
vfs_umount
# a detector whose first head fit of fold 2 crashes: that fold is run
# again, and the model is still the local executor's
cat >"$T/flaky-detfit" <<EOF
#!/bin/sh
if [ "\$1" = detfit ] && [ "\$SLURM_ARRAY_TASK_ID" = 1 ] && [ ! -e "$T/dflaked" ]; then
    touch "$T/dflaked"; echo "flaky: simulated crash" >&2; exit 9
fi
exec "$WORKER" "\$@"
EOF
chmod +x "$T/flaky-detfit"
vfs_mount --executor slurm --slurm-tasks 4 --slurm-worker "$T/flaky-detfit"
mkdir "$MNT/models/detflaky"
echo "$DETREQ" >"$MNT/models/detflaky/train.json"
check "flaky head fit: trained" wait_status "$MNT/models/detflaky/status" succeeded 300
check "flaky head fit: log: the fold was retried" \
    grep -Eq "task 1 \(job [0-9]+_1\) ended FAILED.*simulated crash; try 2 of 3" "$MNT/models/detflaky/log"
check "flaky head fit: the same model.safetensors as the local executor" \
    cmp "$T/detref.model" "$MNT/models/detflaky/model.safetensors"
vfs_umount

# ---- a worker that cannot see the store ------------------------------------------
cat >"$T/blind-worker" <<EOF
#!/bin/sh
# a node where the store is not mounted: the worker looks for it elsewhere
for a; do shift; [ "\$prev" = --store ] && a=/nonexistent/store; set -- "\$@" "\$a"; prev=\$a; done
exec "$WORKER" "\$@"
EOF
chmod +x "$T/blind-worker"
vfs_mount --executor slurm --slurm-tasks 2 --slurm-tries 2 --slurm-worker "$T/blind-worker"
mkdir "$MNT/models/blind"
echo '{"dataset": "test", "budget_minutes": 2}' >"$MNT/models/blind/train.json"
check "store not visible: model fails" wait_status "$MNT/models/blind/status" failed 120
check "store not visible: says so" grep -q "cannot see the store.*shared with the nodes" \
    "$MNT/models/blind/status"

# ---- cancellation: rm train.json while the array waits ------------------------------
vfs_umount
vfs_mount --executor slurm --slurm-tasks 4
blocker=$(sbatch --parsable --exclusive -N 2 --job-name=blocker -o /dev/null --wrap 'sleep 120')
for i in $(seq 50); do
    [ "$(squeue -h -j "$blocker" -o %T)" = RUNNING ] && break
    sleep 0.2
done
mkdir "$MNT/models/c"
echo '{"dataset": "big", "budget_minutes": 2}' >"$MNT/models/c/train.json"
check "cancel: tasks pending" wait_jq "$MNT/models/c/status.json" '.slurm.tasks[0].state' PENDING 30
cjob=$(jq -r '.slurm.jobId' "$MNT/models/c/status.json")
check "cancel: squeue shows the array" test -n "$(squeue -h -j "$cjob" -o %i)"
rm "$MNT/models/c/train.json"
check "cancel: model cancelled" wait_status "$MNT/models/c/status" cancelled 30
check "cancel: log says scancel" grep -q "cancelled job array $cjob (scancel)" "$MNT/models/c/log"
gone=0
for i in $(seq 50); do
    [ -z "$(squeue -h -j "$cjob" -t PENDING,RUNNING -o %i 2>/dev/null)" ] && { gone=1; break; }
    sleep 0.2
done
check_eq "cancel: no task of the array left in the queue" 1 "$gone"

# an evaluation cancelled by removing its folder while its array waits
mkdir "$MNT/models/sl/evaluations/big"
check "cancel evaluation: tasks pending" \
    wait_jq "$MNT/models/sl/status.json" '.slurmEvaluation.tasks[0].state' PENDING 30
ejob=$(jq -r '.slurmEvaluation.jobId' "$MNT/models/sl/status.json")
rm -r "$MNT/models/sl/evaluations/big"
check "cancel evaluation: log says scancel" \
    bash -c 'for i in $(seq 100); do grep -q "cancelled job array $1 (scancel)" "$2" && exit 0; sleep 0.1; done; exit 1' \
    _ "$ejob" "$MNT/models/sl/log"
gone=0
for i in $(seq 50); do
    [ -z "$(squeue -h -j "$ejob" -t PENDING,RUNNING -o %i 2>/dev/null)" ] && { gone=1; break; }
    sleep 0.2
done
check_eq "cancel evaluation: no task of its array left in the queue" 1 "$gone"
check "cancel evaluation: the folder stays gone" test ! -e "$MNT/models/sl/evaluations/big"
scancel "$blocker"

# ---- a slurmd killed while its tasks run ----------------------------------------------
rm -rf "$STORE/models/.vfs-cache"
mkdir "$MNT/models/k"
echo '{"dataset": "big", "budget_minutes": 3}' >"$MNT/models/k/train.json"
check "kill: node2 runs a task" wait_jq "$MNT/models/k/status.json" \
    '[.slurm.tasks[]? | select(.state == "RUNNING" and .node == "node2")] | length > 0' true 60
kill -9 "$(cat "$C/slurmd-node2.pid")"
wait_status "$MNT/models/k/status" succeeded 150 >/dev/null ||
    wait_status "$MNT/models/k/status" failed 5 >/dev/null || true
st=$(head -n 1 "$MNT/models/k/status")
if [[ "$st" == succeeded* ]]; then
    ok "kill: the model finished ($st)"
elif [[ "$st" == "failed: "*slurm* ]]; then
    ok "kill: the model failed clearly ($st)"
else
    bad "kill: neither finished nor failed clearly: $st"
fi
cluster_slurmd node2 # it takes over what its steps left
check "kill: no half-written cache file" test -z "$(find "$STORE/models/.vfs-cache" -name '*.tmp.*')"
check "kill: every cache file whole" python3 - "$STORE/models/.vfs-cache" <<'EOF'
import os, struct, sys
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        b = open(os.path.join(d, f), "rb").read()
        magic, dim, klen = struct.unpack("<III", b[:12])
        assert magic == 0x31434656 and len(b) == 12 + klen + 4 * dim, f
EOF
vfs_umount

# ---- a cluster with accounting: the budget charged with sacct's count ------------
if ! cluster_has_accounting; then
    if [ -n "${VFS_REQUIRE_SLURM:-}" ]; then
        bad "accounting: slurmdbd or mariadb-server missing (apt-get install slurmdbd mariadb-server)"
    else
        echo "note: slurmdbd or mariadb-server not installed: the accounting part is skipped"
    fi
else
    cluster_stop
    t_acct=$SECONDS
    check "accounting: cluster up with MariaDB and slurmdbd" cluster_start "$T/cluster-acct" accounting
    check "accounting: sacct answers" sacct --noheader -j 1
    rm -rf "$STORE/models/.vfs-cache" # the array must compute the features
    vfs_mount --executor slurm --slurm-tasks 2 --slurm-args "--cpus-per-task=1"
    A=$MNT/models/acct
    mkdir "$A"
    echo '{"dataset": "train", "budget_minutes": 1}' >"$A/train.json"
    check "accounting: trained" wait_status "$A/status" succeeded 240
    check "accounting: features from a 2-task array" \
        grep -Eq "slurm: feature extraction \([0-9]+ images, [0-9]+ backbone\(s\)\) submitted as job array [0-9]+ \(2 tasks\)" "$A/log"
    # the line right after the extraction's: what was charged for it
    line=$(grep -A1 -E "slurm: [0-9]+ feature files computed" "$A/log" | grep "budget:" | head -n 1 || true)
    echo "note: accounting: $(sed -E 's/^[^ ]+ [^ ]+ //' <<<"$line")"
    check "accounting: log: the extraction was charged sacct's count" \
        grep -Eq "budget: [0-9.]+ CPU s accounted by Slurm \(sacct\) for job [0-9]+ \(2 tasks; the workers report [0-9.]+\)" <<<"$line"
    acct=$(sed -E 's/.*budget: ([0-9.]+) CPU s accounted.*/\1/' <<<"$line")
    workers=$(sed -E 's/.*the workers report ([0-9.]+)\).*/\1/' <<<"$line")
    check "accounting: sacct's figure is plausible (> 0, within 25% + 1 s of the workers' $workers)" \
        python3 -c 'import sys; a, w = map(float, sys.argv[1:]); sys.exit(not (a > 0 and abs(a - w) <= 0.25 * w + 1))' \
        "${acct:-0}" "${workers:-0}"
    check "accounting: the search's budget is what sacct counted" \
        grep -Eq "budget: ${acct:-x} of 60.0 CPU s spent by the Slurm workers" "$A/log"
    check "accounting: sacct lists the array's tasks" \
        test "$(sacct --noheader -X --parsable2 --name=vfs-acct -o JobID | grep -c _)" -ge 2
    vfs_umount
    echo "note: accounting part took $((SECONDS - t_acct)) s"
fi
vfs_done
