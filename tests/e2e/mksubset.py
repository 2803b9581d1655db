"""mksubset.py SRC_DIR SPLIT OUT_DIR K: the first K images of every category
of SRC_DIR/SPLIT.json (a classification dataset of ../shared/datasets) as a
COCO dataset in OUT_DIR (images/ and annotations.json)."""
import json
import os
import shutil
import sys

src, split, out, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
coco = json.load(open(os.path.join(src, split + ".json")))
label = {a["image_id"]: a["category_id"] for a in coco["annotations"]}
taken, count = [], {}
for im in sorted(coco["images"], key=lambda i: i["id"]):
    c = label.get(im["id"])
    if c is not None and count.get(c, 0) < k:
        count[c] = count.get(c, 0) + 1
        taken.append(im)
ids = {im["id"] for im in taken}
os.makedirs(os.path.join(out, "images"), exist_ok=True)
for im in taken:
    name = "images/" + os.path.basename(im["file_name"])
    shutil.copyfile(os.path.join(src, im["file_name"]), os.path.join(out, name))
    im["file_name"] = name
coco["images"] = taken
coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
json.dump(coco, open(os.path.join(out, "annotations.json"), "w"))
print(len(taken))
