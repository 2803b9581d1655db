#!/usr/bin/python3
"""mkformats.py: turns a COCO dataset folder (as test_detect_mkdata.py det
writes: images/ and annotations.json with relative boxes) into the other
formats visionfs reads, with the standard library only.

  mkformats.py voc COCO_DIR OUT_DIR    Annotations/NAME.xml + JPEGImages/NAME.png
                                       (Pascal VOC pixel corners, <size> given)
  mkformats.py yolo COCO_DIR OUT_DIR   images/NAME.png + labels/NAME.txt + data.yaml
                                       (names as a YAML list)
"""
import json, os, shutil, sys
from xml.sax.saxutils import escape


def load(src):
    with open(os.path.join(src, "annotations.json")) as f:
        coco = json.load(f)
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    boxes = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        boxes[a["image_id"]].append((cats[a["category_id"]], a["bbox"]))
    return coco, cats, boxes


def voc(src, out):
    coco, _, boxes = load(src)
    os.makedirs(os.path.join(out, "Annotations"), exist_ok=True)
    os.makedirs(os.path.join(out, "JPEGImages"), exist_ok=True)
    for im in coco["images"]:
        base = os.path.basename(im["file_name"])
        shutil.copy(os.path.join(src, im["file_name"]), os.path.join(out, "JPEGImages", base))
        w, h = im["width"], im["height"]
        objs = "".join(
            "  <object>\n    <name>%s</name>\n    <difficult>0</difficult>\n    <bndbox>\n"
            "      <xmin>%d</xmin>\n      <ymin>%d</ymin>\n      <xmax>%d</xmax>\n"
            "      <ymax>%d</ymax>\n    </bndbox>\n  </object>\n"
            % (escape(name), round(b[0] * w), round(b[1] * h), round((b[0] + b[2]) * w),
               round((b[1] + b[3]) * h))
            for name, b in boxes[im["id"]])
        xml = ("<annotation>\n  <folder>JPEGImages</folder>\n  <filename>%s</filename>\n"
               "  <size>\n    <width>%d</width>\n    <height>%d</height>\n    <depth>3</depth>\n"
               "  </size>\n%s</annotation>\n" % (escape(base), w, h, objs))
        stem = os.path.splitext(base)[0]
        with open(os.path.join(out, "Annotations", stem + ".xml"), "w") as f:
            f.write(xml)


def yolo(src, out):
    coco, cats, boxes = load(src)
    names = [cats[k] for k in sorted(cats)]
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "labels"), exist_ok=True)
    for im in coco["images"]:
        base = os.path.basename(im["file_name"])
        shutil.copy(os.path.join(src, im["file_name"]), os.path.join(out, "images", base))
        lines = ["%d %.6f %.6f %.6f %.6f" % (names.index(name), b[0] + b[2] / 2, b[1] + b[3] / 2,
                                             b[2], b[3]) for name, b in boxes[im["id"]]]
        stem = os.path.splitext(base)[0]
        with open(os.path.join(out, "labels", stem + ".txt"), "w") as f:
            f.write("".join(l + "\n" for l in lines))
    with open(os.path.join(out, "data.yaml"), "w") as f:
        f.write("# made by mkformats.py\nnc: %d\nnames: [%s]\n"
                % (len(names), ", ".join("'%s'" % n for n in names)))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("voc", "yolo"):
        sys.exit(__doc__)
    (voc if sys.argv[1] == "voc" else yolo)(sys.argv[2], sys.argv[3])
