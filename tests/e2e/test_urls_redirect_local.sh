# test_urls_redirect_local.sh: a download that starts at a remote address may
# not be redirected to this machine's loopback (where services trust local
# callers); one that starts on loopback may, and a remote redirect to the
# same remote host is followed (issue 10). "Remote" is this machine's own
# non-loopback address, so no network is needed.
source "$(dirname "$0")/lib.sh"

IP=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.' | grep -v '^127\.' | head -n 1)
if [ -z "$IP" ]; then
    echo "skipped: no non-loopback IPv4 address on this machine"
    exit 77
fi
TOOLS=$E2E_DIR/../tools
WWW=$SRC/www
mkdir -p "$WWW"
for i in 1 2 3; do $MKIMG "$WWW/r$i.png" 80 60 "$i"; done
FAULTSERVER_BIND=0.0.0.0 python3 "$TOOLS/faultserver.py" "$WWW" "$T/port" "$T/requests.log" &
SRV_PID=$!
trap 'kill $SRV_PID 2>/dev/null; wait $SRV_PID 2>/dev/null; vfs_cleanup' EXIT
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")

python3 - "$SRC/urls.json" "$IP" "$PORT" <<'PY'
import json, sys
out, ip, port = sys.argv[1], sys.argv[2], sys.argv[3]
urls = [f"http://{ip}:{port}/tolocal/r1.png",   # remote -> loopback: refused
        f"http://127.0.0.1:{port}/tolocal/r2.png",  # loopback -> loopback: followed
        f"http://{ip}:{port}/redir/r3.png"]     # remote -> the same remote: followed
images = [{"id": i + 1, "width": 80, "height": 60, "file_name": f"r{i + 1}.png", "absolute_url": u}
          for i, u in enumerate(urls)]
anns = [{"id": i, "image_id": i, "category_id": 1 + i % 2} for i in range(1, 4)]
json.dump({"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}, open(out, "w"))
PY

vfs_mount
mkdir "$MNT/datasets/web"
cp "$SRC/urls.json" "$MNT/datasets/web/"
S=$MNT/datasets/web/status.json
check "one image fails" wait_jq "$S" .imagesFailed 1 60
# the refused one may fail before the others land: wait for them too
check "the other two arrive" wait_jq "$S" .imagesFound 2 30
check "the refused one is image 1, saying why" jqe \
    '[.errors[] | select(.id == 1 and (.message | contains("redirect from a remote server to this machine")))] | length == 1' "$S"
check "the loopback target was never asked for r1" bash -c "! grep -q 'GET /f/r1.png' '$T/requests.log'"
vfs_umount
vfs_done
