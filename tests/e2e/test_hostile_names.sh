# test_hostile_names.sh: names a user can write into datasets/NAME/ never take
# the daemon down and never make status.json invalid JSON. The first case is
# the crash of issue 10: a refused write to a file named by 240 control
# characters overflowed the status writer. Every case checks that the write
# gets the errno a user expects, that status.json parses and carries the name
# exactly (jq decodes it back), that status is one line, and that the daemon
# still answers and a good dataset next to it is untouched.
source "$(dirname "$0")/lib.sh"

vfs_mount

# a good dataset that must stay ready whatever happens next to it
G=$SRC/good
mkdir -p "$G/images"
for i in 1 2 3 4; do $MKIMG "$G/images/g$i.png" 64 64 "$i"; done
printf '%s\n' "1 images/g1.png 64 64 1" "2 images/g2.png 64 64 1" \
    "3 images/g3.png 64 64 2" "4 images/g4.png 64 64 2" | mkcoco "$G/ann.json"
cp -r "$G" "$MNT/datasets/good"
check "good dataset ready" wait_status "$MNT/datasets/good/status" "ready: 4 images" 10
GOOD_JSON=$(cat "$MNT/datasets/good/status.json")

# py_write DIR NAME_EXPR CONTENT: writes CONTENT to DIR/<name> where the name
# is a Python bytes expression; prints "ok" or the strerror of the failure.
py_write() {
    python3 - "$1" "$2" "$3" <<'EOF'
import os, sys
d, expr, content = sys.argv[1], sys.argv[2], sys.argv[3]
name = eval(expr)
path = os.fsencode(d) + b"/" + name
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, content.encode())
    os.close(fd)
    print("ok")
except OSError as e:
    print(e.strerror)
EOF
}

# alive: the daemon answers and the good dataset is unchanged
alive() {
    ls "$MNT/datasets" >/dev/null 2>&1 &&
        [ "$(cat "$MNT/datasets/good/status.json")" == "$GOOD_JSON" ]
}

# one_line FILE: exactly one line, no control characters but the newline
one_line() {
    [ "$(wc -l <"$1")" -eq 1 ] && ! LC_ALL=C grep -q '[[:cntrl:]]' "$1"
}

# clean_text FILE: UTF-8 whose only control character is the newline (no
# C0 but it, no DEL, no C1 such as U+009B, the 8-bit CSI)
clean_text() {
    python3 -c '
import sys, unicodedata
t = open(sys.argv[1], "rb").read().decode("utf-8")
sys.exit(1 if [c for c in t if c != "\n" and unicodedata.category(c) == "Cc"] else 0)' "$1"
}

# wait_grep SECONDS TEXT FILE: until FILE holds the fixed string TEXT
wait_grep() {
    local n=$(($1 * 10))
    while [ $n -gt 0 ]; do
        grep -qF "$2" "$3" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    echo "timeout waiting for \"$2\" in $3"
    return 1
}

# ---- the crash: 240 control characters, content not JSON ----
mkdir "$MNT/datasets/d"
got=$(py_write "$MNT/datasets/d" 'b"\x01" * 240 + b".json"' 'not json')
check_eq "240 control characters, not JSON: close() says EINVAL" "Invalid argument" "$got"
check "daemon still answers after the refused write" alive
check "status.json is valid JSON" jqe . "$MNT/datasets/d/status.json"
check_eq "lastRefusedWrite.file is the name, decoded exactly" \
    "$(python3 -c 'print("\x01" * 240 + ".json")')" \
    "$(jq -r .lastRefusedWrite.file "$MNT/datasets/d/status.json")"
check "status is one line without control characters" one_line "$MNT/datasets/d/status"
check "status says the write was refused" grep -q '^invalid: datasetAnnotationsInvalid' \
    "$MNT/datasets/d/status"

# ---- every hostile spelling as the name of a refused and of a kept file ----
# (quotes, backslashes, printf directives, U+2028, invalid UTF-8, DEL, a
# newline, a 250-byte name)
NAMES=(
    'b"q\"uo\"te.json"'
    'b"back\\\\slash\\\\.json"'
    'b"%n%s%x%n.json"'
    '"line\u2028sep\u2029.json".encode()'
    'b"bad\xff\xfe\xc0\x80utf8.json"'
    'b"del\x7f\x1b[31mred.json"'
    'b"new\nline.json"'
    'b"n" * 245 + b".json"'
)
i=0
for expr in "${NAMES[@]}"; do
    i=$((i + 1))
    mkdir "$MNT/datasets/h$i"
    got=$(py_write "$MNT/datasets/h$i" "$expr" '{"images": 1}')
    check_eq "h$i: a refused write says EINVAL" "Invalid argument" "$got"
    check "h$i: daemon answers" alive
    check "h$i: status.json parses after a refused write" jqe . "$MNT/datasets/h$i/status.json"
    check "h$i: status is one line" one_line "$MNT/datasets/h$i/status"
    # a kept file with the same name: valid JSON but not a usable dataset
    got=$(py_write "$MNT/datasets/h$i" "$expr" \
        '{"images": [{"id": 1, "width": 64, "height": 64, "file_name": "missing.png"}], "annotations": [], "categories": [{"id": 1, "name": "a"}]}')
    check_eq "h$i: a COCO file is accepted" "ok" "$got"
    check "h$i: status.json parses" wait_jq "$MNT/datasets/h$i/status.json" '.imagesMissing' 1 10
    want=$(python3 -c "import sys; sys.stdout.write(($expr).decode('utf-8', 'replace'))")
    have=$(jq -j .annotationFile "$MNT/datasets/h$i/status.json")
    check_eq "h$i: annotationFile names the file (invalid UTF-8 as U+FFFD)" "$want" "$have"
    check "h$i: status is one line" one_line "$MNT/datasets/h$i/status"
done

# ---- several annotation files with hostile names: all listed exactly ----
mkdir "$MNT/datasets/multi"
for expr in 'b"a\"b.json"' 'b"c\\d.json"' 'b"e\x01f.json"'; do
    py_write "$MNT/datasets/multi" "$expr" '{"images": [], "annotations": [], "categories": []}' >/dev/null
done
check "several files: status.json parses" wait_jq "$MNT/datasets/multi/status.json" \
    '.annotationFilesFound | length' 3 10
check_eq "several files: every name listed exactly" \
    "$(printf '%s\n' 'a"b.json' 'c\d.json' "$(printf 'e\001f.json')" | sort)" \
    "$(jq -r '.annotationFilesFound[]' "$MNT/datasets/multi/status.json" | sort)"

# ---- a category name with a terminal escape, a C1 CSI, a carriage return
# and a newline: a model's training fails naming it; its status stays one
# line and its log one entry per line, with none of those characters ----
H=$SRC/hcat
mkdir -p "$H/images"
for i in 1 2 3; do $MKIMG "$H/images/c$i.png" 64 64 "$i"; done
python3 - "$H/ann.json" <<'EOF'
import json, sys
cats = [{"id": 1, "name": "ok"}, {"id": 2, "name": "\u001b[2J\u009b31mred\rX\n2026-01-01 forged"}]
imgs = [{"id": i, "file_name": "images/c%d.png" % i, "width": 64, "height": 64} for i in (1, 2, 3)]
anns = [{"id": i, "image_id": i, "category_id": 1 if i < 3 else 2, "bbox": [0, 0, 64, 64]} for i in (1, 2, 3)]
json.dump({"images": imgs, "annotations": anns, "categories": cats}, open(sys.argv[1], "w"))
EOF
cp -r "$H" "$MNT/datasets/hcat"
check "hostile category: dataset ready" wait_status "$MNT/datasets/hcat/status" "ready: 3 images" 10
check "hostile category: dataset status is clean text" clean_text "$MNT/datasets/hcat/status"
mkdir "$MNT/models/hm"
echo '{"dataset": "hcat", "kind": "detector", "budget_minutes": 1}' >"$MNT/models/hm/train.json"
check "hostile category: training fails naming the category" \
    wait_status "$MNT/models/hm/status" "failed: datasetCorrupt: dataset \"hcat\": category" 30
check "hostile category: model status is one line" one_line "$MNT/models/hm/status"
check "hostile category: model status is clean text" clean_text "$MNT/models/hm/status"
check "hostile category: model log is clean text" clean_text "$MNT/models/hm/log"
check_eq "hostile category: no log line was forged" 0 "$(grep -c '^2026-01-01 forged' "$MNT/models/hm/log")"
check "hostile category: status.json parses" jqe . "$MNT/models/hm/status.json"
HCAT_ESC='\x1B[2J\xC2\x9B31mred\x0DX\x0A2026-01-01 forged'
check "hostile category: model status shows the name with its bytes escaped" \
    grep -qF "$HCAT_ESC" "$MNT/models/hm/status"
check_eq "hostile category: the model log has one line naming it, bytes escaped" 1 \
    "$(grep -cF "$HCAT_ESC" "$MNT/models/hm/log")"

# ---- URLs (COCO absolute_url) a user wrote reach status and the daemon
# log: one with a C1 CSI (U+009B), U+2028 and invalid UTF-8 is fetched and
# fails (nothing listens on port 9): its log line shows those bytes as
# \xNN; one with a newline followed by a forged entry and a terminal escape
# is refused: the dataset's status stays one line, escaped ----
mkdir "$MNT/datasets/url1" "$MNT/datasets/url2"
# url_coco FILE URL_BYTES_EXPR: a one-image COCO file whose absolute_url is
# the Python bytes expression, written as raw bytes (JSON escapes for C0)
url_coco() {
    python3 - "$1" "$2" <<'EOF2'
import sys
url = eval(sys.argv[2])
esc = b"".join(b"\\u%04x" % c if c < 0x20 else b"\\\\" if c == 0x5c else bytes([c]) for c in url)
doc = (b'{"images": [{"id": 1, "width": 64, "height": 64, "file_name": "u.png", '
       b'"absolute_url": "' + esc + b'"}], "annotations": [{"id": 1, "image_id": 1, '
       b'"category_id": 1}], "categories": [{"id": 1, "name": "a"}]}')
open(sys.argv[1], "wb").write(doc)
EOF2
}
url_coco "$MNT/datasets/url1/ann.json" 'b"http://127.0.0.1:9/a\xc2\x9b31m\xe2\x80\xa8\xff.png"'
URL_ESC='http://127.0.0.1:9/a\xC2\x9B31m\xE2\x80\xA8\xFF.png'
check "hostile URL: the failed download is logged, bytes escaped" \
    wait_grep 30 "fetch: \"$URL_ESC\" failed" "$T/daemon.log"
check_eq "hostile URL: exactly one log line names it" 1 "$(grep -cF "$URL_ESC" "$T/daemon.log")"
check_eq "hostile URL: no other log line holds its path" 1 "$(grep -c '127.0.0.1:9/a' "$T/daemon.log")"
check "hostile URL: dataset status is one line" one_line "$MNT/datasets/url1/status"
check "hostile URL: dataset status is clean text" clean_text "$MNT/datasets/url1/status"
check "hostile URL: status.json parses" jqe . "$MNT/datasets/url1/status.json"
url_coco "$MNT/datasets/url2/ann.json" \
    'b"http://127.0.0.1:9/b\n2026-01-01T00:00:00Z visionfs: forged\x1b[31m\xe2\x80\xa9\xfe.png"'
check "hostile URL with a newline: refused in status" \
    wait_status "$MNT/datasets/url2/status" "invalid: DatasetInvalidAnnotationUri" 10
check "hostile URL with a newline: status is one line" one_line "$MNT/datasets/url2/status"
check "hostile URL with a newline: status is clean text" clean_text "$MNT/datasets/url2/status"
check "hostile URL with a newline: status shows the bytes escaped" grep -qF \
    '9/b\x0a2026-01-01T00:00:00Z visionfs: forged\x1b[31m\xE2\x80\xA9\xFE.png' "$MNT/datasets/url2/status"
check_eq "hostile URL with a newline: no forged log entry" 0 \
    "$(grep -c '^2026-01-01T00:00:00Z visionfs: forged' "$T/daemon.log")"

# ---- the refused annotation file named with a newline (h7 above): its
# daemon log line shows the name escaped ----
check "hostile file name: the refusal is logged with the name escaped" \
    grep -qF 'dataset "h7": "new\x0Aline.json" refused' "$T/daemon.log"
check_eq "hostile file name: no log line starts with what followed the newline" 0 \
    "$(grep -c '^line.json' "$T/daemon.log")"

check "the daemon log holds no raw control characters (no forged entries)" \
    bash -c "! LC_ALL=C grep -q '[[:cntrl:]]' '$T/daemon.log'"
check "the daemon log is clean text" clean_text "$T/daemon.log"
check "daemon still mounted at the end" mountpoint -q "$MNT"
check "good dataset untouched at the end" alive
vfs_done
