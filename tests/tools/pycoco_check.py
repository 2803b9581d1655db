#!/usr/bin/env python3
"""pycoco_check.py: random detection cases scored by pycocotools.

Writes a JSON list of cases, each {"seed", "ncat", "images", "gt", "pred",
"expected": {"0.3": {"map", "per_cat"}, "0.5": ..., "0.75": ...}} for
tests/unit/test_metrics_det.c to compare against eng_det_map. The cases are
built to hit pycocotools' corner rules: tied scores (within and across
images), boxes on a coarse grid (equal IoUs), images without boxes,
categories without ground truth (with and without predictions), more than
100 detections for one image and category.

usage: pycoco_check.py OUT.json [FIRST_SEED] [COUNT]
"""
import contextlib
import io
import json
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

THRESHOLDS = (0.3, 0.5, 0.75)


def make_case(seed):
    rng = np.random.default_rng(seed)
    ncat = int(rng.integers(1, 5))
    nimg = int(rng.integers(1, 7))
    images = sorted(int(x) for x in rng.choice(1000, size=nimg, replace=False))
    grid = bool(rng.integers(0, 2))   # coarse grid: many equal IoUs
    coarse_scores = bool(rng.integers(0, 2))
    # some categories get no ground truth at all
    absent = set(int(c) for c in range(ncat) if rng.random() < 0.25)

    def box():
        if grid:
            x, y = (float(v) * 8 for v in rng.integers(0, 8, size=2))
            w, h = (float(v) * 8 for v in rng.integers(1, 5, size=2))
        else:
            x, y = (float(v) for v in rng.uniform(0, 60, size=2))
            w, h = (float(v) for v in rng.uniform(2, 40, size=2))
        return [x, y, w, h]

    def jitter(b):
        if grid and rng.random() < 0.5:
            return list(b)
        s = rng.normal(0, 0.15 * max(b[2], b[3], 1.0), size=4)
        return [b[0] + s[0], b[1] + s[1], max(0.5, b[2] + s[2]), max(0.5, b[3] + s[3])]

    def score():
        if coarse_scores:
            return float(rng.integers(1, 6)) / 5.0
        return float(rng.random())

    gt, pred = [], []
    for img in images:
        if rng.random() < 0.2:          # an image without boxes
            gboxes = []
        else:
            gboxes = []
            for _ in range(int(rng.integers(0, 6))):
                c = int(rng.integers(0, ncat))
                if c in absent:
                    continue
                gboxes.append((c, box()))
        gt += [{"image": img, "category": c, "bbox": b} for c, b in gboxes]
        for c, b in gboxes:             # detections near the truth
            for _ in range(int(rng.integers(0, 3))):
                cat = c if rng.random() < 0.85 else int(rng.integers(0, ncat))
                pred.append({"image": img, "category": cat, "bbox": jitter(b), "score": score()})
        for _ in range(int(rng.integers(0, 4))):   # false positives
            pred.append({"image": img, "category": int(rng.integers(0, ncat)),
                         "bbox": box(), "score": score()})
    if rng.random() < 0.15:             # overflow the 100 detections cap
        img = images[0]
        for _ in range(130):
            pred.append({"image": img, "category": 0, "bbox": box(), "score": score()})
    if not pred:
        pred.append({"image": images[0], "category": 0, "bbox": box(), "score": 0.5})
    order = rng.permutation(len(pred))
    pred = [pred[i] for i in order]
    return ncat, images, gt, pred


def score_case(ncat, images, gt, pred):
    ds = {
        "images": [{"id": i, "width": 100, "height": 100} for i in images],
        "categories": [{"id": c + 1, "name": str(c)} for c in range(ncat)],
        "annotations": [
            {"id": k + 1, "image_id": g["image"], "category_id": g["category"] + 1,
             "bbox": g["bbox"], "area": g["bbox"][2] * g["bbox"][3], "iscrowd": 0}
            for k, g in enumerate(gt)
        ],
    }
    res = [{"image_id": p["image"], "category_id": p["category"] + 1, "bbox": p["bbox"],
            "score": p["score"]} for p in pred]
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = ds
        cg.createIndex()
        cd = cg.loadRes(res)
        ev = COCOeval(cg, cd, "bbox")
        ev.params.iouThrs = np.array(THRESHOLDS)
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    out = {}
    for t, thr in enumerate(THRESHOLDS):
        s = prec[t, :, :, 0, -1]
        m = float(np.mean(s[s > -1])) if np.any(s > -1) else -1.0
        per = []
        for k in range(ncat):
            col = s[:, k]
            per.append(float(np.mean(col)) if np.all(col > -1) else -1.0)
        out[repr(thr)] = {"map": m, "per_cat": per}
    return out


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    cases = []
    for seed in range(first, first + count):
        ncat, images, gt, pred = make_case(seed)
        cases.append({"seed": seed, "ncat": ncat, "images": images, "gt": gt, "pred": pred,
                      "expected": score_case(ncat, images, gt, pred)})
    with open(sys.argv[1], "w") as f:
        json.dump(cases, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
