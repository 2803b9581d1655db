#!/usr/bin/python3
"""mkcoco.py OUT [KIND]: writes a COCO file for the images listed on stdin,
one per line: "id file_name width height category_id [x y w h]" (a bbox
makes a detection annotation). Categories 1 cat, 2 dog, 3 fox."""
import json, sys

out = sys.argv[1]
images, anns, seen = [], [], set()
for n, line in enumerate(sys.stdin.read().split("\n")):
    f = line.split()
    if not f:
        continue
    iid, name, w, h, cat = int(f[0]), f[1], int(f[2]), int(f[3]), int(f[4])
    if iid not in seen:
        images.append({"id": iid, "width": w, "height": h, "file_name": name})
        seen.add(iid)
    a = {"id": 1000 + n, "image_id": iid, "category_id": cat}
    if len(f) > 5:
        a["bbox"] = [float(v) for v in f[5:9]]
        a["area"] = a["bbox"][2] * a["bbox"][3]
    anns.append(a)
cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "fox"}]
with open(out, "w") as fo:
    json.dump({"images": images, "annotations": anns, "categories": cats}, fo)
