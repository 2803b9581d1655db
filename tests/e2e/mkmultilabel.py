#!/usr/bin/python3
"""mkmultilabel.py: a multilabel COCO dataset from the clothing images of
../shared/datasets (one label per image there): each image keeps its fine
category and gets the coarse one it belongs to, so every image carries two
tags and the coarse tags span several fine ones.

  mkmultilabel.py CLOTHING_DIR SPLIT OUT_DIR PER_FINE SEED [FINE,FINE,...]

SPLIT is train or test (CLOTHING_DIR/SPLIT.json). PER_FINE images of each
fine category are drawn with SEED (all of them when PER_FINE is 0) and
copied to OUT_DIR/images/; OUT_DIR/annotations.json is the COCO file
(no "task": visionfs detects multilabel from the annotations). Prints
"IMAGES TAGS" on stdout.
"""
import json, os, random, shutil, sys

COARSE = {"t-shirt": "upper", "shirt": "upper", "longsleeve": "upper", "outwear": "upper",
          "pants": "lower", "shorts": "lower", "skirt": "lower", "shoes": "footwear",
          "hat": "headwear", "dress": "full-body"}
DEFAULT_FINE = ["t-shirt", "shirt", "pants", "shorts", "shoes"]


def main():
    src, split, out, per, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    fine = sys.argv[6].split(",") if len(sys.argv) > 6 else DEFAULT_FINE
    data = json.load(open(os.path.join(src, split + ".json")))
    cat_name = {c["id"]: c["name"] for c in data["categories"]}
    label = {a["image_id"]: cat_name[a["category_id"]] for a in data["annotations"]}
    tags = fine + sorted({COARSE[f] for f in fine}, key=lambda c: list(COARSE.values()).index(c))
    tag_id = {t: i + 1 for i, t in enumerate(tags)}
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": tag_id[t], "name": t} for t in tags]}
    for f in fine:
        ims = sorted((im for im in data["images"] if label.get(im["id"]) == f), key=lambda im: im["id"])
        if per:
            ims = rng.sample(ims, min(per, len(ims)))
        for im in ims:
            name = os.path.basename(im["file_name"])
            shutil.copyfile(os.path.join(src, im["file_name"]), os.path.join(out, "images", name))
            iid = len(coco["images"]) + 1
            coco["images"].append({"id": iid, "width": im["width"], "height": im["height"],
                                   "file_name": "images/" + name})
            for t in (f, COARSE[f]):
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": iid,
                                            "category_id": tag_id[t]})
    json.dump(coco, open(os.path.join(out, "annotations.json"), "w"), indent=1)
    print(len(coco["images"]), len(tags))


if __name__ == "__main__":
    main()
