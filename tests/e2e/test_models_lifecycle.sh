# test_models_lifecycle.sh: the training lifecycle through the mount: cancel
# by removing train.json (cancelling, then cancelled), retraining while the
# old model keeps serving predict/, rm -r of a model while it trains, and
# kill -9 during training: the next mount restarts the run and it succeeds.
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0 centernet

# distinct seeds so each training extracts features afresh (no cache hits)
for s in 11 12 13 14 16; do $MK cls "$SRC/d$s" 6 $s; done
# big enough that training is still reading images when they go
for s in 17 18; do $MK cls "$SRC/d$s" 40 $s; done
$MK cls "$SRC/dt" 2 15
$MK one "$SRC/one.png" disc 5

vfs_mount
for s in 11 12 13 14 16 17 18 t; do
    mkdir "$MNT/datasets/d$s"
    cp -r "$SRC/d$s/." "$MNT/datasets/d$s/"
done
for s in 11 12 13 14 16 17 18 t; do
    check "dataset d$s ready" wait_status "$MNT/datasets/d$s/status" ready 60
done

# a first model
M=$MNT/models/m
mkdir "$M"
tail -n 0 -f "$M/log" >"$T/tail.out" 2>&1 &
TAIL=$!
sleep 0.3
echo '{"dataset": "d11", "budget_minutes": 2, "test_dataset": "dt"}' >"$M/train.json"
check "first version succeeds" wait_status "$M/status" succeeded 300
for i in $(seq 50); do
    grep -q "succeeded: version 1" "$T/tail.out" && break
    sleep 0.1
done
kill "$TAIL"
wait "$TAIL" 2>/dev/null || true
check "tail -f of log shows the run as it goes" grep -q "succeeded: version 1" "$T/tail.out"
check "tail -f saw the training lines" grep -q "training version 1" "$T/tail.out"
cp "$SRC/one.png" "$M/predict/one.png"
before=$(jq -c .customModelResult "$M/predict/one.png.json")
check_eq "first version predicts" "disc" "$(jq -r '.tagsResult.values[0].name' <<<"$before")"

# retrain: the old model keeps serving until the new one succeeds
echo '{"dataset": "d12", "budget_minutes": 2, "test_dataset": "dt"}' >"$M/train.json"
st=$(cat "$M/status")
check "retrain queued or training" bash -c '[[ "$1" == notStarted || "$1" == training* || "$1" == succeeded ]]' _ "$st"
check "predict/ still there while retraining" test -d "$M/predict"
cp "$SRC/one.png" "$M/predict/during.png"
check_eq "old model answers during retraining" "disc" \
    "$(jq -r '.customModelResult.tagsResult.values[0].name' "$M/predict/during.png.json")"
check "second version succeeds" wait_status "$M/status" succeeded 300
check "log names version 2" grep -q "training version 2" "$M/log"
check_eq "status.json serves version 2" "2" "$(jq -r .model.version "$M/status.json")"
cp "$SRC/one.png" "$M/predict/after.png"
check_eq "new model answers" "disc" \
    "$(jq -r '.customModelResult.tagsResult.values[0].name' "$M/predict/after.png.json")"

# cancel by removing train.json
C=$MNT/models/c
mkdir "$C"
echo '{"dataset": "d13", "budget_minutes": 30}' >"$C/train.json"
check "cancel: training starts" wait_status "$C/status" training 120
rm "$C/train.json"
s=$(cat "$C/status")
check "cancelling or cancelled right after rm" bash -c '[[ "$1" == cancelling || "$1" == cancelled ]]' _ "$s"
check "cancelled" wait_status "$C/status" cancelled 60
check_eq "status.json cancelled" "cancelled" "$(jq -r .status "$C/status.json")"
check "log says cancelled" grep -q cancelled "$C/log"
check "no predict/ after a cancelled first run" test ! -e "$C/predict"

# rm -r while training
R=$MNT/models/r
mkdir "$R"
echo '{"dataset": "d16", "budget_minutes": 30}' >"$R/train.json"
check "rm -r: training starts" wait_status "$R/status" training 120
check "rm -r of a training model" rm -r "$R"
check "model gone" test ! -e "$R"
check "mkdir of the same name again" mkdir "$R"
check_eq "fresh model" "notStarted" "$(cat "$R/status")"

# the dataset removed, or renamed, while a model trains on it: the job
# goes on with the images it started from (hard links)
for how in rm mv; do
    G=$MNT/models/g$how
    D=$([ $how = rm ] && echo d17 || echo d18)
    mkdir "$G"
    echo "{\"dataset\": \"$D\", \"budget_minutes\": 30}" >"$G/train.json"
    check "$how: training starts" wait_status "$G/status" training 120
    if [ $how = rm ]; then rm -r "$MNT/datasets/$D"; else mv "$MNT/datasets/$D" "$MNT/datasets/${D}b"; fi
    check "$how of its dataset: the training still succeeds" wait_status "$G/status" succeeded 300
    check "$how: no store path in status, status.json or log" \
        bash -c "! grep -l -F '$STORE' '$G/status' '$G/status.json' '$G/log'"
done
check "the image links are gone after the jobs" bash -c "! find '$STORE/.tmp' -mindepth 1 -type d | grep -q ."
# writing train.json again on the removed dataset names it
echo '{"dataset": "d17", "budget_minutes": 30}' >"$MNT/models/grm/train.json"
check "retraining on the removed dataset: datasetNotFound" \
    wait_status "$MNT/models/grm/status" "failed: datasetNotFound" 30

# kill -9 during training, then remount: the run restarts and succeeds
K=$MNT/models/k
mkdir "$K"
echo '{"dataset": "d14", "budget_minutes": 1, "test_dataset": "dt"}' >"$K/train.json"
check "kill: training starts" wait_status "$K/status" training 120
vfs_kill9
vfs_mount
s=$(cat "$K/status")
echo "status after remount: $s"
check "restart is visible" bash -c '[[ "$1" == *restarted* || "$1" == notStarted ]]' _ "$s"
check "restarted run succeeds" wait_status "$K/status" succeeded 300
check_eq "status.json counts the restart" "1" "$(jq -r .restarts "$K/status.json")"
check "log says restarted" grep -q "restart" "$K/log"
cp "$SRC/one.png" "$K/predict/one.png"
check_eq "restarted model predicts" "disc" \
    "$(jq -r '.customModelResult.tagsResult.values[0].name' "$K/predict/one.png.json")"
check_eq "cancelled model stays cancelled" "cancelled" "$(cat "$C/status")"
vfs_umount
vfs_done
