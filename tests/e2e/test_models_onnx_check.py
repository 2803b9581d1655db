#!/usr/bin/python3
"""test_models_onnx_check.py: runs an exported models/NAME/model.onnx with
onnxruntime on images and compares with what predict/ answered for them.

  test_models_onnx_check.py MODEL.onnx PREDICT_DIR VFS_PIXELS IMAGE...

PREDICT_DIR/NAME.json holds predict/'s answer for IMAGE's base name.
The inputs are the exact bytes predict/ feeds the backbone (VFS_PIXELS:
the engine's decode, JPEG DCT scaling included, and its 8-bit bilinear
squash resize), so the check is on the graph: same top-1 and every
probability within 1e-4, or exit 1. onnx.checker must pass. For
information it also runs the plain-Pillow recipe of docs/user-guide.md
(full decode, EXIF transpose, resize BILINEAR) and prints how far that is.
"""
import json, os, subprocess, sys, tempfile

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image, ImageOps

TOL = 1e-4


def main():
    path, pdir, tool, images = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    model = onnx.load(path)
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    cats = json.loads(meta["categories"])
    print(f"checker ok; opset {model.opset_import[0].version}, IR {model.ir_version}, "
          f"kind {meta.get('kind')}, {len(cats)} categories, inputs {meta.get('inputs')}")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    if meta.get("kind") == "detector":
        sys.exit(detector(sess, meta, cats, pdir, tool, images))
    if meta.get("kind") == "multilabel":
        sys.exit(multilabel(sess, meta, cats, pdir, tool, images))
    ins = sess.get_inputs()
    bad, worst, pil_worst, pil_top = 0, 0.0, 0.0, 0
    tmp = tempfile.mkdtemp()
    for img in images:
        im = ImageOps.exif_transpose(Image.open(img)).convert("RGB")
        feed, pil = {}, {}
        for i in ins:
            _, h, w, _ = i.shape
            raw = os.path.join(tmp, "px.rgb")
            subprocess.run([tool, img, str(w), str(h), raw], check=True)
            feed[i.name] = np.fromfile(raw, dtype=np.uint8).reshape(1, h, w, 3)
            pil[i.name] = np.asarray(im.resize((w, h), Image.BILINEAR), dtype=np.uint8)[None]
        probs = sess.run(["probabilities"], feed)[0][0]
        pprobs = sess.run(["probabilities"], pil)[0][0]
        want = json.load(open(os.path.join(pdir, os.path.basename(img) + ".json")))
        vals = want["customModelResult"]["tagsResult"]["values"]
        ref = {v["name"]: v["confidence"] for v in vals}
        diff = max(abs(float(probs[k]) - ref.get(c, 0.0)) for k, c in enumerate(cats))
        top_onnx = cats[int(np.argmax(probs))]
        top_pred = max(vals, key=lambda v: v["confidence"])["name"]
        ok = diff <= TOL and top_onnx == top_pred
        pdiff = max(abs(float(pprobs[k]) - ref.get(c, 0.0)) for k, c in enumerate(cats))
        pil_worst = max(pil_worst, pdiff)
        pil_top += cats[int(np.argmax(pprobs))] == top_pred
        worst = max(worst, diff)
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {os.path.basename(img)}: onnx top-1 {top_onnx} "
              f"predict/ top-1 {top_pred}, max |dp| {diff:.2e}")
    print(f"{len(images) - bad}/{len(images)} images agree; max |dp| {worst:.2e}")
    print(f"plain Pillow inputs (information): top-1 equal on {pil_top}/{len(images)}, "
          f"max |dp| {pil_worst:.2e}")
    sys.exit(1 if bad else 0)


def multilabel(sess, meta, cats, pdir, tool, images):
    """Every tag whose score reaches its threshold is in predict/'s list with
    the same confidence (1e-4), and no other tag is."""
    thr = json.loads(meta["thresholds"])
    bad, worst, listed = 0, 0.0, 0
    tmp = tempfile.mkdtemp()
    (i,) = sess.get_inputs()
    _, h, w, _ = i.shape
    for img in images:
        raw = os.path.join(tmp, "px.rgb")
        subprocess.run([tool, img, str(w), str(h), raw], check=True)
        x = np.fromfile(raw, dtype=np.uint8).reshape(1, h, w, 3)
        scores = sess.run(["scores"], {i.name: x})[0][0]
        want = json.load(open(os.path.join(pdir, os.path.basename(img) + ".json")))
        ref = {v["name"]: v["confidence"] for v in want["customModelResult"]["tagsResult"]["values"]}
        ok = True
        for k, c in enumerate(cats):
            s = float(scores[k])
            if c in ref:
                worst = max(worst, abs(s - ref[c]))
                ok &= abs(s - ref[c]) <= TOL
            elif abs(s - thr[k]) > TOL:  # a score at its threshold may round either way
                ok &= s < thr[k]
        listed += len(ref)
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {os.path.basename(img)}: predict/ {sorted(ref)}, "
              f"onnx above threshold {[c for k, c in enumerate(cats) if scores[k] >= thr[k]]}")
    print(f"{len(images) - bad}/{len(images)} images agree; {listed} tags listed; "
          f"max |dscore| {worst:.2e}")
    return 1 if bad or listed == 0 else 0


def detector(sess, meta, cats, pdir, tool, images):
    """Same objects in the same order: category, confidence within 1e-4,
    box within 0.5 px (predict/ rounds x, y, w, h to integers, so the
    exported box rounded the same way must equal it, 1e-3 of slack at a
    .5 boundary)."""
    letterbox = meta["resize"].startswith("letterbox")
    tmp = tempfile.mkdtemp()
    bad, worst_p, worst_b, nobj = 0, 0.0, 0.0, 0
    for img in images:
        raw = os.path.join(tmp, "px.rgb")
        subprocess.run([tool, img, "512", "512", raw] + (["letterbox"] if letterbox else []),
                       check=True)
        x = np.fromfile(raw, dtype=np.uint8).reshape(1, 512, 512, 3)
        want = json.load(open(os.path.join(pdir, os.path.basename(img) + ".json")))
        w, h = want["metadata"]["width"], want["metadata"]["height"]
        boxes, scores, cat, count = sess.run(
            ["boxes", "scores", "categories", "count"],
            {"image": x, "image_size": np.array([[w, h]], dtype=np.float32)})
        objs = want["customModelResult"]["objectsResult"]["values"]
        n = int(count[0])
        ok = n == len(objs)
        for j in range(min(n, len(objs))):
            o = objs[j]
            x1, y1, x2, y2 = (float(v) for v in boxes[0, j])
            bb = o["boundingBox"]
            got = [x1, y1, x2 - x1, y2 - y1]
            ref = [bb["x"], bb["y"], bb["w"], bb["h"]]
            db = max(abs(g - r) for g, r in zip(got, ref))
            dp = abs(float(scores[0, j]) - o["tags"][0]["confidence"])
            worst_b, worst_p = max(worst_b, db), max(worst_p, dp)
            ok = ok and cats[int(cat[0, j])] == o["tags"][0]["name"] and dp <= TOL and db <= 0.5 + 1e-3
        nobj += len(objs)
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {os.path.basename(img)}: onnx {n} objects, predict/ {len(objs)}")
    print(f"{len(images) - bad}/{len(images)} images agree ({nobj} objects); "
          f"max |dconfidence| {worst_p:.2e}, max |dbox| {worst_b:.3f} px (predict/ rounds to integers)")
    return 1 if bad else 0


main()
