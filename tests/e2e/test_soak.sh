# test_soak.sh: a bounded concurrency soak (issue 10, item 6). For
# VFS_SOAK_SECONDS (default 90; longer by hand), at once: 4 shells copy
# images into predict/ of a model while it retrains, status files are read
# in a tight loop, a dataset is removed and another renamed while models
# train on them, an evaluation is started and its model deleted under it.
# Every call runs under `timeout` (a stated bound: 20 s for a file call, 120 s
# for a predict result, which waits for its job): none may hang, no answer
# may be wrong (results parse and name a known category; status.json
# parses), and the daemon's peak RSS (VmHWM from /proc) is printed.
source "$(dirname "$0")/lib.sh"

need_backbone efficientnet-lite0

SECS=${VFS_SOAK_SECONDS:-90}
CALL=20
RESULT=120
$MK cls "$SRC/dA" 8 41
$MK cls "$SRC/dB" 8 42
$MK cls "$SRC/dR" 30 43
$MK cls "$SRC/dN" 30 44
for i in $(seq 12); do $MK one "$SRC/p$i.png" "$(echo disc stripes checker | cut -d' ' -f$((i % 3 + 1)))" $((200 + i)); done

vfs_mount
for d in dA dB dR dN; do
    mkdir "$MNT/datasets/$d"
    cp -r "$SRC/$d/." "$MNT/datasets/$d/"
done
for d in dA dB dR dN; do check "$d ready" wait_status "$MNT/datasets/$d/status" ready 120; done
M=$MNT/models/m
mkdir "$M"
echo '{"dataset": "dA", "budget_minutes": 1}' >"$M/train.json"
check "a first version to predict with" wait_status "$M/status" succeeded 300
cp "$M/model.safetensors" "$T/m.safetensors"

OUT=$T/soak
mkdir -p "$OUT"
END=$(($(date +%s) + SECS))
fail() { echo "$*" >>"$OUT/fail"; }

# 4 shells: cp into predict/, then read the result
predictor() {
    local k=$1 n=0 i r
    while [ "$(date +%s)" -lt $END ]; do
        i=$((n % 12 + 1))
        n=$((n + 1))
        timeout $CALL cp "$SRC/p$i.png" "$M/predict/s${k}_$n.png" || { fail "cp s${k}_$n: rc $?"; continue; }
        r=$(timeout $RESULT jq -r '.customModelResult.tagsResult.values[0].name // .error.code' \
            "$M/predict/s${k}_$n.png.json" 2>&1) || { fail "result s${k}_$n: rc $? $r"; continue; }
        case "$r" in disc | stripes | checker) echo >>"$OUT/pred$k" ;; *) fail "result s${k}_$n: $r" ;; esac
    done
}
# the same model retrains, on dA and dB in turn
retrainer() {
    local n=0 d
    while [ "$(date +%s)" -lt $END ]; do
        d=$([ $((n % 2)) = 0 ] && echo dB || echo dA)
        n=$((n + 1))
        echo "{\"dataset\": \"$d\", \"budget_minutes\": 1}" | timeout $CALL tee "$M/train.json" >/dev/null ||
            fail "train.json: rc $?"
        echo >>"$OUT/retrain"
        sleep 15
    done
}
# status files in a tight loop
reader() {
    local f s
    while [ "$(date +%s)" -lt $END ]; do
        for f in "$M/status" "$MNT/datasets/dA/status" "$MNT/models/m/log"; do
            timeout $CALL cat "$f" >/dev/null || fail "cat $f: rc $?"
        done
        for f in "$M/status.json" "$MNT/datasets/dA/status.json"; do
            s=$(timeout $CALL cat "$f") || { fail "cat $f: rc $?"; continue; }
            jq -e . >/dev/null <<<"$s" || fail "$f does not parse: ${s:0:80}"
        done
        echo >>"$OUT/reads"
    done
}
for k in 1 2 3 4; do predictor $k & done
reader &

# meanwhile: a dataset removed and another renamed under a training
for how in rm mv; do
    G=$MNT/models/g$how
    D=$([ $how = rm ] && echo dR || echo dN)
    mkdir "$G"
    echo "{\"dataset\": \"$D\", \"budget_minutes\": 1}" >"$G/train.json"
    check "g$how: training starts" wait_status "$G/status" training 240
    if [ $how = rm ]; then
        check "rm -r of a dataset in use answers within ${CALL} s" timeout $CALL rm -r "$MNT/datasets/$D"
    else
        check "mv of a dataset in use answers within ${CALL} s" timeout $CALL mv "$MNT/datasets/$D" "$MNT/datasets/${D}2"
    fi
done
# one training worker: the retraining of m joins once both have started
retrainer &
# an evaluation started and its model deleted under it
E=$MNT/models/e
mkdir "$E"
cp "$T/m.safetensors" "$E/model.safetensors"
check "imported model for the evaluation" wait_status "$E/status" succeeded 60
mkdir "$E/evaluations/dA"
sleep 1
check "rm -r of a model under evaluation answers within ${CALL} s" timeout $CALL rm -r "$E"
check "that model is gone" test ! -e "$E"

while [ "$(date +%s)" -lt $END ]; do
    kill -0 "$VFS_PID" || break
    sleep 1
done
wait_jobs_start=$(date +%s)
for j in $(jobs -p); do
    # not the daemon, nor lib.sh's watchdog (waiting for it made every run
    # last until the watchdog fired, 540 s by default, and print its stacks)
    [ "$j" = "$VFS_PID" ] || [ "$j" = "$WATCHDOG_PID" ] && continue
    wait "$j" 2>/dev/null || true
done
for how in rm mv; do
    check "g$how: trained on the images it started from" wait_status "$MNT/models/g$how/status" succeeded 300
    check "g$how: no store path shown" bash -c "! grep -l -F '$STORE' '$MNT/models/g$how/status' '$MNT/models/g$how/status.json' '$MNT/models/g$how/log'"
done
preds=$(cat "$OUT"/pred* 2>/dev/null | wc -l)
reads=$(wc -l <"$OUT/reads" 2>/dev/null || echo 0)
retrains=$(wc -l <"$OUT/retrain" 2>/dev/null || echo 0)
hwm=$(awk '/VmHWM/ {print $2 " " $3}' /proc/$VFS_PID/status)
echo "soak: ${SECS} s (+$(($(date +%s) - wait_jobs_start)) s draining): $preds predictions, $reads status rounds, $retrains train.json writes, daemon peak RSS $hwm"
if [ -s "$OUT/fail" ]; then
    bad "calls that hung or answered wrong: $(wc -l <"$OUT/fail")"
    head -20 "$OUT/fail"
else
    ok "every call answered within its bound and parsed"
fi
check "predictions were made" test "$preds" -gt 0
check "the model still serves" wait_status "$M/status" succeeded 300
check "the daemon still answers" test -f "$MNT/README"
vfs_umount
vfs_done
