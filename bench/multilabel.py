#!/usr/bin/env python3
"""multilabel.py: few-shot multilabel benchmark (issue 12 part 3).

Builds a multilabel set from ../shared/datasets/clothing (one label per image
there): every image keeps its fine category and gets its coarse one (upper,
lower, footwear, headwear, full-body; tests/e2e/mkmultilabel.py's map), so
15 tags, 2 per image. For each k and seed it samples k training images of
every fine category (so every tag has at least k images), trains the
multilabel recipe with build/bench/bench_fewshot --multilabel (no mount) and
reports mean AP (and micro precision/recall at the learnt thresholds) on the
whole test split. COCO files go to a temp folder (outside the tree); images
are read where they are.

  bench/multilabel.py [--k 2,5,10] [--seeds 0,1,2] [--backbones efficientnet-lite0]
                      [--budget-min 5] [--cache DIR] [--out results.jsonl]
Standard library only.
"""
import argparse, json, os, random, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(PROJECT, "tests", "e2e"))
from mkmultilabel import COARSE  # noqa: E402


def find_clothing():
    for d in (os.path.join(PROJECT, "..", "shared", "datasets", "clothing"),
              "/work/shared/datasets/clothing"):
        if os.path.isfile(os.path.join(d, "train.json")):
            return d
    raise SystemExit("../shared/datasets/clothing not found")


def multilabel(coco, images):
    """COCO multilabel file of the given images of a clothing split."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    fine = [c["name"] for c in coco["categories"]]
    coarse = []
    for f in fine:
        if COARSE[f] not in coarse:
            coarse.append(COARSE[f])
    tags = fine + coarse
    tid = {t: i + 1 for i, t in enumerate(tags)}
    label = {a["image_id"]: names[a["category_id"]] for a in coco["annotations"]}
    out = {"images": [], "annotations": [], "categories": [{"id": tid[t], "name": t} for t in tags]}
    for im in images:
        out["images"].append(im)
        for t in (label[im["id"]], COARSE[label[im["id"]]]):
            out["annotations"].append({"id": len(out["annotations"]) + 1, "image_id": im["id"],
                                       "category_id": tid[t]})
    return out


def sample(coco, k, seed):
    names = {c["id"]: c["name"] for c in coco["categories"]}
    label = {a["image_id"]: names[a["category_id"]] for a in coco["annotations"]}
    rng = random.Random(seed)
    picked = []
    for c in coco["categories"]:
        ims = sorted((im for im in coco["images"] if label.get(im["id"]) == c["name"]),
                     key=lambda im: im["id"])
        picked += rng.sample(ims, min(k, len(ims)))
    return picked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", default="2,5,10")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--backbones", default="efficientnet-lite0")
    ap.add_argument("--budget-min", default="5")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    tool = os.path.join(PROJECT, "build", "bench", "bench_fewshot")
    if not os.access(tool, os.X_OK):
        raise SystemExit("build bench_fewshot first (cmake --build build --target bench_fewshot)")
    root = find_clothing()
    train = json.load(open(os.path.join(root, "train.json")))
    test = json.load(open(os.path.join(root, "test.json")))
    tmp = tempfile.mkdtemp(prefix="mlbench.")
    cache = a.cache or os.path.join(tmp, "cache")
    test_path = os.path.join(tmp, "test.json")
    json.dump(multilabel(test, test["images"]), open(test_path, "w"))
    results = {}
    out = open(a.out, "a") if a.out else None
    for k in [int(x) for x in a.k.split(",")]:
        for seed in [int(x) for x in a.seeds.split(",")]:
            tr_path = os.path.join(tmp, "train_k%d_s%d.json" % (k, seed))
            json.dump(multilabel(train, sample(train, k, seed)), open(tr_path, "w"))
            cmd = [tool, "--multilabel", "--root", root, "--train", tr_path, "--test", test_path,
                   "--backbones", a.backbones, "--budget-min", a.budget_min, "--seed", str(seed),
                   "--cache", cache]
            p = subprocess.run(cmd, capture_output=True, text=True)
            line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "{}"
            r = json.loads(line)
            r.update({"k": k, "seed": seed, "backbones": a.backbones})
            print(json.dumps(r), flush=True)
            if out:
                out.write(json.dumps(r) + "\n")
            if "mAP" in r:
                results.setdefault(k, []).append(r)
    print("\n| k per fine category | seeds | train images | mean AP (test, 15 tags) | "
          "precision | recall | train wall s |")
    print("|---|---|---|---|---|---|---|")
    for k, rs in sorted(results.items()):
        m = [r["mAP"] for r in rs]
        sd = statistics.stdev(m) if len(m) > 1 else 0.0
        print("| %d | %s | %d | %.3f ± %.3f | %.3f | %.3f | %.1f |" % (
            k, ",".join(str(r["seed"]) for r in rs), rs[0]["train_images"], statistics.mean(m), sd,
            statistics.mean(r["precision"] for r in rs), statistics.mean(r["recall"] for r in rs),
            statistics.mean(r["train_wall_s"] for r in rs)))
    # chance: a random ranking's AP is about the tag's share of the test images
    n = len(test["images"])
    share = [sum(1 for a in multilabel(test, test["images"])["annotations"] if a["category_id"] == c["id"]) / n
             for c in multilabel(test, [])["categories"]]
    print("\nchance mean AP (random scores) ~ %.3f" % statistics.mean(share))


if __name__ == "__main__":
    main()
