# test_models_report.sh: the evaluation report as a user sees it, in a real
# browser: a classifier and a detector trained through the mount (the small
# drawn sets of test_models.sh and test_detect.sh) offer report.html,
# confusion.png and pr.png next to evaluation.json and in
# evaluations/DATASET/; headless Chromium loads each page from the mount,
# takes a screenshot (not blank), logs no console error, and its DOM has the
# expected number of SVG charts and thumbnails (data: JPEGs), no script, no
# link, and category names shown as text (escaped), not as markup. The PNGs
# decode with the documented sizes. Skips (77) without chromium.
# VFS_REPORT_SHOTS=DIR keeps the screenshots and PNGs there to look at.
export VFS_E2E_TIMEOUT=${VFS_E2E_TIMEOUT:-1400}
source "$(dirname "$0")/lib.sh"

command -v chromium >/dev/null || { echo "skipped: chromium missing (scripts/install-deps.sh)"; exit 77; }
need_backbone efficientnet-lite0
need_backbone centernet
CHK="python3 $E2E_DIR/test_models_report_check.py"
KEEP=${VFS_REPORT_SHOTS:-}
[ -n "$KEEP" ] && mkdir -p "$KEEP"

# classifier data: one category named with markup characters; two test
# images labelled wrongly on purpose, so the page has mistakes to show
WEIRD='check<b>er</b> & "co"'
$MK cls "$SRC/cls" 6 1
$MK cls "$SRC/clstest" 4 2
for d in cls clstest; do
    jq --arg n "$WEIRD" '.categories |= map(if .name == "checker" then .name = $n else . end)' \
        "$SRC/$d/annotations.json" >"$SRC/$d/a.json" && mv "$SRC/$d/a.json" "$SRC/$d/annotations.json"
done
jq '.annotations |= (.[0].category_id = 2 | .[4].category_id = 3)' "$SRC/clstest/annotations.json" \
    >"$SRC/a.json" && mv "$SRC/a.json" "$SRC/clstest/annotations.json"
python3 "$E2E_DIR/test_detect_mkdata.py" det "$SRC/det" 10 1
python3 "$E2E_DIR/test_detect_mkdata.py" det "$SRC/dettest" 4 2
# one test box with the other category, so the detector page has a mistake
jq '.annotations[0].category_id |= (if . == 1 then 2 else 1 end)' "$SRC/dettest/annotations.json" \
    >"$SRC/a.json" && mv "$SRC/a.json" "$SRC/dettest/annotations.json"

vfs_mount
for d in cls clstest det dettest; do
    mkdir "$MNT/datasets/$d"
    cp -r "$SRC/$d/." "$MNT/datasets/$d/"
done
for d in cls clstest det dettest; do
    check "dataset $d ready" wait_status "$MNT/datasets/$d/status" ready 60
done

C=$MNT/models/c D=$MNT/models/d
mkdir "$C" "$D"
# the classifier reports its held-out split, the detector its test dataset
echo '{"dataset": "cls", "budget_minutes": 1}' >"$SRC/c.json"
echo '{"dataset": "det", "test_dataset": "dettest", "budget_minutes": 1}' >"$SRC/d.json"
cp "$SRC/c.json" "$C/train.json"
check "classifier trained" wait_status "$C/status" succeeded 600
cp "$SRC/d.json" "$D/train.json"
check "detector trained" wait_status "$D/status" succeeded 900
mkdir "$C/evaluations/clstest" "$D/evaluations/det"
check "classifier evaluated on clstest" wait_status "$C/evaluations/clstest/status" succeeded 300
check "detector evaluated on det" wait_status "$D/evaluations/det/status" succeeded 300

for f in report.html confusion.png pr.png; do
    for dir in "$C" "$C/evaluations/clstest" "$D" "$D/evaluations/det"; do
        check "$dir/$f is offered" test -s "$dir/$f"
    done
    check "ls lists $f" grep -qx "$f" <(ls "$C")
done
check "report.html is read-only" sh -c "! (echo x >'$C/report.html') 2>/dev/null"
check "README lists report.html" grep -q "report.html" "$MNT/README"

# page NAME URL_DIR NCAT_ROWS SVG_EXPECTED IMG_EXPECTED (IMG_EXPECTED "-": as many as figures)
page() {
    local name=$1 dir=$2 rows=$3 nsvg=$4 nimg=$5
    local shot=$T/$name.png dom=$T/$name.dom.html log=$T/$name.log
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,2400 \
        --enable-logging=stderr --v=0 --screenshot="$shot" "file://$dir/report.html" \
        >/dev/null 2>"$log" || true
    chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$dir/report.html" \
        >"$dom" 2>>"$log" || true
    [ -n "$KEEP" ] && cp "$shot" "$KEEP/$name.screenshot.png" && cp "$dir/confusion.png" \
        "$KEEP/$name.confusion.png" && cp "$dir/pr.png" "$KEEP/$name.pr.png"
    check "$name: screenshot taken" test -s "$shot"
    local s
    s=$($CHK png "$shot")
    echo "$name: screenshot (w h colours ink%): $s"
    check "$name: screenshot is not blank" awk '{exit !($3 > 100 && $4 > 0.5)}' <<<"$s"
    check "$name: no console errors" sh -c "! grep -E 'CONSOLE|Uncaught|ERR_FILE|Not allowed to load' '$log'"
    local j
    j=$($CHK dom "$dom")
    echo "$name: DOM: $(jq -c 'del(.text)' <<<"$j")"
    check_eq "$name: svg charts (confusion, one per tag, calibration)" "$nsvg" "$(jq .svg <<<"$j")"
    [ "$nimg" == "-" ] && nimg=$(jq .mistake <<<"$j")
    check_eq "$name: thumbnails" "$nimg" "$(jq .img <<<"$j")"
    check_eq "$name: every thumbnail a data: JPEG" "$nimg" "$(jq .jpeg <<<"$j")"
    check_eq "$name: nothing from outside (script, link)" "0 0" "$(jq -r '"\(.script) \(.link)"' <<<"$j")"
    local side=$((170 + rows * 44))
    check_eq "$name: confusion.png decodes, ${side}x$side" "$side $side" \
        "$($CHK png "$dir/confusion.png" | cut -d' ' -f1,2)"
    check_eq "$name: pr.png decodes, 720x480" "720 480" "$($CHK png "$dir/pr.png" | cut -d' ' -f1,2)"
    check "$name: confusion.png has ink" awk '{exit !($3 >= 3 && $4 > 1)}' <<<"$($CHK png "$dir/confusion.png")"
    LAST_DOM=$j
}

# classifier: 3 categories; mistakes shown = off-diagonal cells, at most 12
wrong_in() {
    jq '[.confusionMatrix.matrix | to_entries[] | .key as $i | .value | to_entries[] | select(.key != $i) | .value] | add' "$1"
}
wrong=$(wrong_in "$C/evaluation.json")
echo "classifier: $wrong wrong answers on the held-out split"
page cls-model "$C" 3 5 "$((wrong < 12 ? wrong : 12))"
check "page names the held-out split" jqe '.text | contains("Evaluated on held-out split")' <<<"$LAST_DOM"
wrong=$(wrong_in "$C/evaluations/clstest/metrics.json")
echo "classifier: $wrong wrong answers on clstest"
check "the wrongly labelled test images are mistakes" test "$wrong" -ge 2
page cls-eval "$C/evaluations/clstest" 3 5 "$((wrong < 12 ? wrong : 12))"
check "category name shown as text, escaped" jqe --arg n "$WEIRD" '.text | contains($n)' <<<"$LAST_DOM"
check "no markup from a name in the page" sh -c "! grep -q '<b>er</b>' '$T/cls-eval.dom.html'"
check "page names the test dataset" jqe '.text | contains("Evaluated on clstest")' <<<"$LAST_DOM"
# detector: 2 categories, confusion with background/missed
page det-model "$D" 3 4 -
check "the relabelled test box is a mistake with a thumbnail" test "$(jq .img <<<"$LAST_DOM")" -ge 1
check "detector page has missed and background" jqe '.text | contains("missed") and contains("background")' <<<"$LAST_DOM"
page det-eval "$D/evaluations/det" 3 4 -

# the report goes with the evaluation and with the model
rmdir "$C/evaluations/clstest"
check "evaluation removed with its report" test ! -e "$C/evaluations/clstest/report.html"
rm -r "$D"
check "model removed with its report" test ! -e "$D/report.html"
vfs_done
