# test_worker.sh: build/visionfs-worker extract (the unit of work a cluster
# runs) writes the very feature-cache files the daemon writes when it trains:
# a classifier is trained through the mount, then the worker extracts the
# same dataset in 2 shards into a second store; every file the daemon wrote
# must be byte for byte one the worker wrote. Also: its exit codes and messages
# for a store it cannot see and a bad --shard, and `evaluate` (a classifier's
# probabilities of two shards give the daemon's evaluation's scores; an
# unreadable image is named in failed.I), and that `finetune` shard I of
# an array runs the I-th of its --spec (one per shard).
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0 centernet
WORKER=$(dirname "$VFS_BIN")/visionfs-worker
[ -x "$WORKER" ] || { echo "no visionfs-worker next to $VFS_BIN"; exit 1; }

$MK cls "$SRC/train" 4 1

vfs_mount
mkdir "$MNT/datasets/train"
cp -r "$SRC/train/." "$MNT/datasets/train/"
check "dataset ready" wait_status "$MNT/datasets/train/status" ready 60
mkdir "$MNT/models/m"
echo '{"dataset": "train", "budget_minutes": 2}' >"$MNT/models/m/train.json"
check "trained" wait_status "$MNT/models/m/status" succeeded 300
IMG=$(ls "$SRC/train/images" | head -n 1)
cp "$SRC/train/images/$IMG" "$MNT/models/m/predict/x.png"
cp "$MNT/models/m/predict/x.png.json" "$T/daemon.answer"
mkdir "$MNT/models/m/evaluations/train"
check "daemon's evaluation" wait_status "$MNT/models/m/evaluations/train/status" succeeded 120
cp "$MNT/models/m/evaluations/train/predictions.json" "$T/daemon.preds"
vfs_umount

# worker predict FILES...: IMAGE.json next to the image, as predict/ writes it
cp "$SRC/train/images/$IMG" "$T/x.png"
check "worker predict" "$WORKER" predict --store "$STORE" --model m --version 1 --shard 0/1 "$T/x.png"
check "its answer is byte for byte the daemon's" cmp "$T/daemon.answer" "$T/x.png.json"

# worker evaluate: a classifier's probabilities of two shards of the dataset's
# images; their best scores are the daemon's evaluation's predictions.json
python3 - "$STORE" "$T/eval.list" "$T/eval.ids" <<'PY'
import glob, json, os, sys
store, lst, ids = sys.argv[1:]
ann = [f for f in glob.glob(store + "/datasets/train/*.json")
       if os.path.basename(f) not in ("status.json", "dataset.json")][0]
imgs = json.load(open(ann))["images"]
open(lst, "w").write("".join("datasets/train/%s\n" % i["file_name"] for i in imgs))
open(ids, "w").write(json.dumps([i["id"] for i in imgs]))
PY
JE=$T/evaljob
mkdir -p "$JE"
for i in 0 1; do
    check "worker evaluate shard $i/2" "$WORKER" evaluate --store "$STORE" \
        --model-file "$STORE/models/m/model.safetensors" --images "$T/eval.list" \
        --job-dir "$JE" --shard "$i/2"
done
check "evaluate: done and probs files, no failure" \
    test -f "$JE/done.0" -a -f "$JE/done.1" -a -f "$JE/probs.0" -a -f "$JE/probs.1" -a ! -e "$JE/failed.0"
check "evaluate: the daemon's scores" python3 - "$JE" "$T/eval.ids" "$T/daemon.preds" <<'PY'
import json, struct, sys
job, ids, preds = sys.argv[1:]
ids = json.load(open(ids))
raw = open(job + "/probs.0", "rb").read() + open(job + "/probs.1", "rb").read()
ncat = len(raw) // 4 // len(ids)
assert ncat >= 2 and len(raw) == 4 * ncat * len(ids), (len(raw), len(ids))
p = struct.unpack("<%df" % (len(raw) // 4), raw)
score = {i: round(max(p[k * ncat:(k + 1) * ncat]) * 1e6) / 1e6 for k, i in enumerate(ids)}
daemon = {d["image_id"]: d["score"] for d in json.load(open(preds))}
assert daemon == score, (daemon, score)
PY
{ head -n 1 "$T/eval.list"; echo no/such/image.png; } >"$T/bad.list"
check "evaluate: an unreadable image" "$WORKER" evaluate --store "$STORE" \
    --model-file "$STORE/models/m/model.safetensors" --images "$T/bad.list" --job-dir "$JE" \
    --shard 0/1
check "evaluate: failed.0 names it" grep -q "no/such/image.png" "$JE/failed.0"

# a second store with only the dataset: the worker fills its cache
S2=$T/store2
mkdir -p "$S2/models" "$S2/datasets"
cp -r "$SRC/train" "$S2/datasets/train"
J=$T/job
mkdir -p "$J"
for i in 0 1; do
    check "worker shard $i/2" "$WORKER" extract --store "$S2" --dataset train \
        --shard $i/2 --job-dir "$J" --threads 2
done
check "started markers" test -f "$J/started.0" -a -f "$J/started.1"
check_eq "done markers count 12 images" 12 \
    "$(cat "$J/done.0" "$J/done.1" | jq -s 'map(.images) | add')"
nb=$(ls "$(backbones_dir)" | wc -l)
check_eq "worker wrote one file per image and backbone" $((12 * nb)) \
    "$(find "$S2/models/.vfs-cache" -name '*.feat' | wc -l)"
# the daemon's first pass (the cheapest backbone, no augmentation) is among
# them: each of its files byte for byte
n=0 same=0
while IFS= read -r f; do
    n=$((n + 1))
    cmp -s "$S2/models/.vfs-cache/$f" "$STORE/models/.vfs-cache/$f" && same=$((same + 1))
done < <(cd "$STORE/models/.vfs-cache" && find . -name '*.feat' | sort)
check "the daemon wrote its features" test "$n" -ge 12
check_eq "each daemon file is byte for byte the worker's" "$n" "$same"
check "no temp file left" test -z "$(find "$S2/models/.vfs-cache" -name '*.tmp.*')"

# a second run finds everything cached
out=$("$WORKER" extract --store "$S2" --dataset train --shard 0/1 2>&1)
check "second run computes nothing" grep -q "0 computed" <<<"$out"

# a store the worker cannot see: exit 3 and a message naming it
set +e
out=$("$WORKER" extract --store "$T/nowhere" --dataset train --shard 0/1 2>&1)
rc=$?
set -e
check_eq "invisible store: exit 3" 3 "$rc"
check "invisible store: says shared file system" grep -q "not visible here.*shared" <<<"$out"
check_err "bad --shard refused" "expected I/N" "$WORKER" extract --store "$S2" --dataset train \
    --shard 2/2

# finetune: one --spec per shard (a job array of every candidate), shard I
# runs the I-th (here a damaged one and a missing one: no training needed)
echo "not a job" >"$T/spec0.json"
: >"$T/ft.list"
mkdir -p "$T/ftjob"
check_err "finetune: two specs for one shard refused" "2 --spec for 1 shard(s)" \
    "$WORKER" finetune --store "$S2" --spec "$T/spec0.json" --spec "$T/spec1.json" \
    --images "$T/ft.list" --job-dir "$T/ftjob"
check_err "finetune: shard 0 of 2 runs the first spec" "fine-tuning job: malformed" \
    "$WORKER" finetune --store "$S2" --spec "$T/spec0.json" --spec "$T/spec1.json" \
    --images "$T/ft.list" --job-dir "$T/ftjob" --shard 0/2
check_err "finetune: shard 1 of 2 runs the second spec" "job \"$T/spec1.json\"" \
    "$WORKER" finetune --store "$S2" --spec "$T/spec0.json" --spec "$T/spec1.json" \
    --images "$T/ft.list" --job-dir "$T/ftjob" --shard 1/2
# detfit: a detector's head fit, the same way (shard I runs the I-th spec);
# a fit naming a backbone this node lacks fails saying so
echo "train/a.png" >"$T/df.list"
cat >"$T/dspec1.json" <<'JSON'
{"kind": "detector-fit", "title": "linear heatmap, fold 2 of 4", "backbone": "nosuch",
 "checksum": "00", "images": 1, "categories": 1, "sizes": 1, "pools": [],
 "variant": {"name": "linear heatmap", "finetune_wh": 0, "hidden": 0, "lr": 0.01,
             "epochs": 40, "tiles": 0, "whole": 0},
 "fit": [0], "hold": [], "rng": ["1", "2", "3", "4"], "deadline": 0, "maps": [],
 "map_bytes": 0, "views": [[0, -1, 64, 64, [1, 1, 9, 9, 0]]]}
JSON
check_err "detfit: shard 0 of 2 runs the first spec" "head fit: the job is not valid" \
    "$WORKER" detfit --store "$S2" --spec "$T/spec0.json" --spec "$T/dspec1.json" \
    --images "$T/df.list" --job-dir "$T/ftjob" --shard 0/2
check_err "detfit: a backbone missing on the node is named" \
    "head fit: backbone \"nosuch\" is not installed on this node" \
    "$WORKER" detfit --store "$S2" --spec "$T/spec0.json" --spec "$T/dspec1.json" \
    --images "$T/df.list" --job-dir "$T/ftjob" --shard 1/2
check "detfit: no result left by a failed fit" test ! -e "$T/ftjob/result.1"
vfs_done
