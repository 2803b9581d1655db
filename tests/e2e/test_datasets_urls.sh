# test_datasets_urls.sh: images not in the folder are fetched from their
# absolute_url / coco_url (file:// here, so no network is needed): status
# shows them arriving, the dataset becomes ready, a URL that cannot be
# fetched is an error naming the image, and SAS-like query strings never
# appear in status files. (The fetcher itself is tested in test_fetch*.)
source "$(dirname "$0")/lib.sh"

vfs_mount
if ! grep -q "fetch: started" "$T/daemon.log" 2>/dev/null; then
    sleep 1
fi

mkdir -p "$SRC/remote"
for i in 1 2 3 4; do $MKIMG "$SRC/remote/r$i.png" 80 60 "$i"; done
python3 - "$SRC" <<'PY'
import json, sys
src = sys.argv[1]
images = [
    {"id": 1, "width": 80, "height": 60, "file_name": "r1.png", "absolute_url": f"file://{src}/remote/r1.png?sv=2024&sig=SECRET1"},
    {"id": 2, "width": 80, "height": 60, "file_name": "r2.png", "coco_url": f"file://{src}/remote/r2.png"},
    {"id": 3, "width": 80, "height": 60, "absolute_url": f"file://{src}/remote/r3.png"},
    {"id": 4, "width": 80, "height": 60, "file_name": "images/r4.png", "coco_url": f"file://{src}/remote/r4.png"},
]
anns = [{"id": i, "image_id": i, "category_id": 1 + i % 2} for i in range(1, 5)]
cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
json.dump({"images": images, "annotations": anns, "categories": cats}, open(f"{src}/urls.json", "w"))
images.append({"id": 5, "width": 80, "height": 60, "file_name": "gone.png",
               "absolute_url": f"file://{src}/remote/gone.png?sig=SECRET2"})
anns.append({"id": 5, "image_id": 5, "category_id": 1})
json.dump({"images": images, "annotations": anns, "categories": cats}, open(f"{src}/broken.json", "w"))
PY

mkdir "$MNT/datasets/web"
cp "$SRC/urls.json" "$MNT/datasets/web/"
check "images by URL: ready" wait_status "$MNT/datasets/web/status" "ready: 4 images, 2 categories" 30
check_eq "all found" "4" "$(jq -r .imagesFound "$MNT/datasets/web/status.json")"
check "downloads are not shown in the tree" bash -c "! ls -A '$MNT/datasets/web' | grep -q vfs"
check_eq "a local file wins over the URL" "ready" "$(jq -r .state "$MNT/datasets/web/status.json")"

mkdir "$MNT/datasets/broken"
cp "$SRC/broken.json" "$MNT/datasets/broken/"
check "an unreachable URL: invalid" wait_status "$MNT/datasets/broken/status" "invalid: DatasetInvalidAnnotationUri" 30
check_eq "the error names the image" "DatasetInvalidAnnotationUri 5" \
    "$(jq -r '.errors[] | select(.code == "DatasetInvalidAnnotationUri") | "\(.code) \(.id)"' "$MNT/datasets/broken/status.json" | head -n 1)"
check "no SAS token in status" bash -c "! grep -q SECRET '$MNT/datasets/broken/status' '$MNT/datasets/broken/status.json' '$MNT/datasets/web/status.json'"
cp "$SRC/remote/r1.png" "$SRC/remote/gone.png"
cp "$SRC/broken.json" "$MNT/datasets/broken/"
check "writing the COCO file again retries the failed download" wait_status "$MNT/datasets/broken/status" "ready: 5 images" 30

check "rm -r of a fetched dataset" rm -r "$MNT/datasets/web"
check "gone" test ! -e "$STORE/datasets/web"

vfs_umount
vfs_done
