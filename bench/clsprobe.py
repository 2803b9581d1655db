#!/usr/bin/env python3
"""clsprobe.py: which feature fusions few-shot classification should offer.

Fixed recipes (no search) on the backbones' pooled embeddings, scored on each
dataset's test.json, so a candidate of the search can be judged apart from
the noise of choosing it on a few images. For each dataset it extracts the
embeddings of every train and test image once per view with
build/bench/bench_features (the recipe's own feature pass), takes the
acceptance script's k-image subsets (vfs.py subset()) for each seed, and fits
the two heads the search has on every feature set: L2 logistic regression
(C = 32) and nearest class mean (temperature 8), after the recipe's
normalisation (signed power, centred on the training mean, unit length,
views concatenated at equal weight).

  bench/clsprobe.py [--build build] [--datasets clothing,sign-language-digits]
                    [--k 2,3,5,10] [--seeds 0,1,...,9] [--power 1,0.5]
                    [--work /tmp/clsprobe] [--select | --fusions]

--select: the head choice instead, on one fusion (Lite0 + Lite2 at both
sizes): each head of the search's grids (logistic regression C = 2..8192,
nearest class mean temperature 4..32) is scored by cross-validated log-loss
(2 stratified folds, 3 seeded repeats, as the search does at k = 2), and the
test top-1 of the head picked among both families, among logistic
regressions only and among nearest means only is printed.

--fusions: the feature-set choice instead, with logistic regression (C =
32, 512, 8192): the (set, C) picked by the same cross-validated log-loss
among seven fusions of Lite0 and Lite2 at both sizes, against always the
richest one (all four views, C by the cross-validation), and each set at
C = 512; the power is 1 (--power takes the first value).

--logits: the ImageNet logits of Lite0 and Lite2 at their native sizes
(bench_features --tap logits) as features, alone, as softmax probabilities
(power 0.5) and each added to the two embeddings (power 1), against the two
embeddings alone; logistic regression at C = 32 and 8192.

--augment: more augmented copies of each training image for the linear
head (Lite0 + Lite2 at their own sizes, power 1): the originals alone,
with their mirror, and with the mirror plus 1, 4 or 8 crops (side 60-90 %
of the image, aspect jittered, random place, half of them mirrored: the
distribution of the search's seeded crop, cls_aug_crop; here crop j takes
the same region of every image). Augmented rows weigh as much as the
originals, the centring is on the originals; logistic regression at C =
512 and 8192, and the best C of the grid per cell (hindsight, an upper
bound).

--compare "SET;SET;...": feature sets (views separated by spaces, e.g.
"l0 l2;l0 l1 l2") side by side, logistic regression at C = 512 and the
best C of the grid per cell (hindsight), power 1. A view of a backbone
that is not installed (l1, EfficientNet-Lite1 at 240 px) needs
VISIONFS_BACKBONES pointing at a folder that holds it.

Needs numpy and scikit-learn: it makes its own venv outside the tree
(~/.cache/visionfs-clsprobe-venv) and re-runs itself there.
"""
import argparse, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
SHARED = os.path.join(PROJECT, "..", "shared")
VENV = os.path.expanduser("~/.cache/visionfs-clsprobe-venv")
VIEWS = {  # short name: (backbone, input size)
    "cn": ("centernet", 320), "l0": ("efficientnet-lite0", 224), "l2": ("efficientnet-lite2", 260),
    "CN": ("centernet", 512), "L0": ("efficientnet-lite0", 352), "L2": ("efficientnet-lite2", 416),
    "l1": ("efficientnet-lite1", 240),  # not installed by default: --compare only
}
SETS = ["l0", "l2", "l0 l2", "cn l0 l2", "L0 L2", "CN L0 L2", "l0 l2 L0 L2", "cn l0 l2 CN L0 L2"]


def ensure_numpy():
    try:
        import numpy, sklearn  # noqa: F401
    except ImportError:
        if os.path.abspath(sys.prefix) == os.path.abspath(VENV):
            raise
        if not os.path.exists(os.path.join(VENV, "bin", "python3")):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
            subprocess.check_call([os.path.join(VENV, "bin", "pip"), "install", "-q",
                                   "numpy==2.4.6", "scikit-learn==1.9.1"])
        os.execv(os.path.join(VENV, "bin", "python3"), [os.path.join(VENV, "bin", "python3")] + sys.argv)


def listing(ds, work):
    """Every train and test image of ds: paths file, split and label per row."""
    import json
    root = os.path.join(SHARED, "datasets", ds)
    rows = []
    for split in ("train", "test"):
        coco = json.load(open(os.path.join(root, split + ".json")))
        cats = [c["id"] for c in coco["categories"]]
        label = {a["image_id"]: cats.index(a["category_id"]) for a in coco["annotations"]}
        for im in sorted(coco["images"], key=lambda i: i["id"]):
            rows.append((split, label[im["id"]], os.path.join(root, im["file_name"])))
    paths = os.path.join(work, ds + ".paths")
    with open(paths, "w") as f:
        f.write("".join(r[2] + "\n" for r in rows))
    return paths, rows


def backbones_root():
    """Where the backbones are, by the rule of bench_fewshot and the tests
    (tests/unit/test_backbone_dir.h)."""
    if os.environ.get("VISIONFS_BACKBONES"):
        return os.environ["VISIONFS_BACKBONES"]
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "visionfs", "backbones")


def features(tool, ds, paths, view, work, tap=None, aug=None, aug_args=()):
    """Features of the images listed in paths, cached in work; aug names an
    augmented copy made by aug_args (bench_features' --crop / --flip)."""
    import numpy as np
    bb, size = VIEWS[view]
    if aug:
        out = os.path.join(work, "%s.aug.%s.%d.%s.f32" % (ds, bb, size, aug))
    else:
        out = os.path.join(work, "%s.%s.%d%s.f32" % (ds, bb, size, "." + tap if tap else ""))
    if not os.path.exists(out):
        bbdir = os.path.join(backbones_root(), bb)
        dim = subprocess.check_output([tool, "--backbone", bbdir, "--list", paths, "--out",
                                       out + ".tmp", "--size", str(size)] +
                                      (["--tap", tap] if tap else []) + list(aug_args), text=True)
        os.rename(out + ".tmp", out)
        print("  features %s %s@%d %s: dim %s" % (ds, bb, size, tap or "", dim.strip()),
              file=sys.stderr)
    x = np.fromfile(out, dtype=np.float32).astype(np.float64)
    return x.reshape(sum(1 for _ in open(paths)), -1)


def prep(tr, te, power):
    import numpy as np
    a_out, b_out = [], []
    for a, b in zip(tr, te):
        a = np.sign(a) * np.abs(a) ** power
        b = np.sign(b) * np.abs(b) ** power
        m = a.mean(0)
        a, b = a - m, b - m
        a_out.append(a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12))
        b_out.append(b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12))
    w = 1 / np.sqrt(len(tr))
    return np.hstack(a_out) * w, np.hstack(b_out) * w


def heads(ztr, ytr, zte, K):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    lr = LogisticRegression(C=32, max_iter=400, tol=1e-6).fit(ztr, ytr).predict_proba(zte)
    mu = np.stack([ztr[ytr == c].mean(0) for c in range(K)])
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    return {"logreg C=32": lr.argmax(1), "nearest-mean tau=8": (zte @ mu.T).argmax(1)}


FUSIONS = ["l0", "l2", "l0 l2", "L0 L2", "l0 L0", "l2 L2", "l0 l2 L0 L2"]


def cv_folds(y, tr, K, rng):
    """Two stratified folds of the rows tr, seeded."""
    import numpy as np
    fold = np.zeros(len(tr), int)
    for c in range(K):
        idx = np.where(y[tr] == c)[0]
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % 2
    return fold


def lr_rowspace(ztr, ytr, zte, C):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    u, s, vt = np.linalg.svd(ztr, full_matrices=False)
    m = LogisticRegression(C=C, max_iter=1000, tol=1e-8).fit(u * s, ytr)
    return m.predict_proba(zte @ vt.T)


C_GRID = (2, 8, 32, 128, 512, 2048, 8192)
TAU_GRID = (4, 8, 16, 32)


def head_probs(ztr, ytr, zte, K):
    """Test probabilities of every head of the grids. Logistic regression
    is fitted in the row space of ztr: with an L2 penalty its weights lie in
    the span of the training rows, so this is the same fit at n x n cost."""
    import numpy as np
    out = {("logreg", C): lr_rowspace(ztr, ytr, zte, C) for C in C_GRID}
    mu = np.stack([ztr[ytr == c].mean(0) for c in range(K)])
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    for tau in TAU_GRID:
        e = tau * zte @ mu.T
        e = np.exp(e - e.max(1, keepdims=True))
        out[("nearest-mean", tau)] = e / e.sum(1, keepdims=True)
    return out


def select(X, y, tr, te, K, pw, seed):
    """Test top-1 of the head each rule picks by cross-validated log-loss."""
    import numpy as np
    vs = "l0 l2 L0 L2".split()
    rng = np.random.RandomState(seed)
    loss = {}
    for rep in range(3):
        fold = cv_folds(y, tr, K, rng)
        for f in range(2):
            a, b = tr[fold != f], tr[fold == f]
            za, zb = prep([X[v][a] for v in vs], [X[v][b] for v in vs], pw)
            for h, p in head_probs(za, y[a], zb, K).items():
                loss[h] = loss.get(h, 0) - np.log(np.maximum(p[np.arange(len(b)), y[b]], 1e-15)).sum()
    ztr, zte = prep([X[v][tr] for v in vs], [X[v][te] for v in vs], pw)
    acc = {h: (p.argmax(1) == y[te]).mean() for h, p in head_probs(ztr, y[tr], zte, K).items()}
    rules = {"both families (the search before)": list(acc),
             "logistic regression only (the search now)": [h for h in acc if h[0] == "logreg"],
             "nearest mean only": [h for h in acc if h[0] == "nearest-mean"]}
    return {r: acc[min(hs, key=lambda h: loss[h])] for r, hs in rules.items()}


def fusions(X, y, tr, te, K, pw, seed):
    """Test top-1 of the fusion picked by cross-validation, of the richest
    one, and of each at C = 512."""
    import numpy as np
    rng = np.random.RandomState(seed)
    cands = [(fs, C) for fs in FUSIONS for C in (32, 512, 8192)]
    loss = dict.fromkeys(cands, 0.0)
    for rep in range(3):
        fold = cv_folds(y, tr, K, rng)
        for f in range(2):
            a, b = tr[fold != f], tr[fold == f]
            for fs, C in cands:
                vs = fs.split()
                za, zb = prep([X[v][a] for v in vs], [X[v][b] for v in vs], pw)
                p = lr_rowspace(za, y[a], zb, C)
                loss[(fs, C)] -= np.log(np.maximum(p[np.arange(len(b)), y[b]], 1e-15)).sum()
    acc = {}
    for fs, C in cands:
        vs = fs.split()
        ztr, zte = prep([X[v][tr] for v in vs], [X[v][te] for v in vs], pw)
        acc[(fs, C)] = (lr_rowspace(ztr, y[tr], zte, C).argmax(1) == y[te]).mean()
    out = {"picked by cross-validation": acc[min(cands, key=lambda h: loss[h])],
           "always the richest (four views)":
               acc[min([h for h in cands if h[0] == FUSIONS[-1]], key=lambda h: loss[h])]}
    for fs in FUSIONS:
        out[" + ".join("%s@%d" % VIEWS[v] for v in fs.split()) + ", C=512"] = acc[(fs, 512)]
    return out


def logit_sets(X, L, y, tr, te):
    """Test top-1 of the embeddings with and without the ImageNet logits
    (L: view -> logits) or their softmax probabilities, per C."""
    import numpy as np

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    emb = [(X[v], 1.0) for v in ("l0", "l2")]
    lg = [(L[v], 1.0) for v in ("l0", "l2")]
    pr = [(softmax(L[v]), 0.5) for v in ("l0", "l2")]
    sets = {"embeddings": emb, "logits": lg, "probabilities (power 0.5)": pr,
            "embeddings + logits": emb + lg, "embeddings + probabilities (power 0.5)": emb + pr}
    out = {}
    for name, views in sets.items():
        za, zb = [], []
        for x, pw in views:
            a, b = prep([x[tr]], [x[te]], pw)
            za.append(a)
            zb.append(b)
        w = 1 / np.sqrt(len(views))
        za, zb = np.hstack(za) * w, np.hstack(zb) * w
        for C in (32, 8192):
            out["%s, C=%d" % (name, C)] = (lr_rowspace(za, y[tr], zb, C).argmax(1) == y[te]).mean()
    return out


def aug_crops(n, seed=7):
    """n crop regions drawn as cls_aug_crop draws them: (x, y, w, h, flip)."""
    import numpy as np
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n):
        u1, u2, u3, u4, u5 = rng.rand(5)
        sw = 0.6 + 0.3 * u1
        sh = min(0.95, max(0.55, sw * (0.85 + 0.3 * u2)))
        out.append(((1 - sw) * u3, (1 - sh) * u4, sw, sh, u5 < 0.5))
    return out


def subset_rows(rows, root, train, k, seed):
    """Row indices (into rows) of the training images of the acceptance
    subset k, seed of train (the COCO dict of root/train.json)."""
    sys.path.insert(0, os.path.join(SHARED, "acceptance"))
    from vfs import subset
    row_of = {r[2]: i for i, r in enumerate(rows) if r[0] == "train"}
    return [row_of[os.path.join(root, im["file_name"])] for im in subset(train, k, seed)["images"]]


AUG_SETS = {"originals": 0, "+ mirror": 1, "+ mirror + 1 crop": 2, "+ mirror + 4 crops": 5,
            "+ mirror + 8 crops": 9}


def augment_run(tool, ds, rows, X, y, te, train, root, ks, seeds, work):
    """Per k: test top-1 of each augmentation set, per C (see --augment)."""
    import numpy as np
    subs = {(k, s): subset_rows(rows, root, train, k, s) for k in ks for s in seeds}
    used = sorted(set(i for v in subs.values() for i in v))
    upaths = os.path.join(work, ds + ".augpaths")
    with open(upaths, "w") as f:
        f.write("".join(rows[i][2] + "\n" for i in used))
    at = {i: j for j, i in enumerate(used)}
    # the cached copies hold these images only: name them by the list
    import hashlib
    listkey = hashlib.sha1("".join(rows[i][2] + "\n" for i in used).encode()).hexdigest()[:8]
    # augmentation a of view v: rows of `used`; a = 0 the originals
    crops = aug_crops(8)
    A = {}
    for v in ("l0", "l2"):
        A[(v, 0)] = X[v][used]
        A[(v, 1)] = features(tool, ds, upaths, v, work, aug=listkey + ".flip", aug_args=["--flip"])
        for j, c in enumerate(crops):
            A[(v, 2 + j)] = features(tool, ds, upaths, v, work, aug="%s.crop%d" % (listkey, j),
                                     aug_args=["--crop", "%.4f,%.4f,%.4f,%.4f" % c[:4]] +
                                     (["--flip"] if c[4] else []))
    res = {}
    for k in ks:
        for s in seeds:
            idx = np.array([at[i] for i in subs[(k, s)]])
            ytr = y[np.array(subs[(k, s)])]
            for name, na in AUG_SETS.items():
                za, zb = [], []
                for v in ("l0", "l2"):
                    orig = A[(v, 0)][idx]
                    m = orig.mean(0)
                    a = np.vstack([A[(v, j)][idx] for j in range(na + 1)]) - m
                    b = X[v][te] - m
                    za.append(a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12))
                    zb.append(b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12))
                za, zb = np.hstack(za) / np.sqrt(2), np.hstack(zb) / np.sqrt(2)
                yy = np.tile(ytr, na + 1)
                for C in C_GRID:
                    acc = (lr_rowspace(za, yy, zb, C).argmax(1) == y[te]).mean()
                    res.setdefault((k, name, C), []).append(acc)
    for k in ks:
        for name in AUG_SETS:
            best = max(C_GRID, key=lambda C: np.mean(res[(k, name, C)]))
            print("| %s | %d | %s | %.1f | %.1f | %.1f (C=%d) |" % (
                ds, k, name, 100 * np.mean(res[(k, name, 512)]), 100 * np.mean(res[(k, name, 8192)]),
                100 * np.mean(res[(k, name, best)]), best), flush=True)


def compare_run(X, y, te, train, root, rows, sets, ks, seeds, ds):
    """Per k: test top-1 of each feature set, per C (see --compare)."""
    import numpy as np
    for k in ks:
        res = {}
        for s in seeds:
            tr = np.array(subset_rows(rows, root, train, k, s))
            for fs in sets:
                vs = fs.split()
                ztr, zte = prep([X[v][tr] for v in vs], [X[v][te] for v in vs], 1.0)
                for C in C_GRID:
                    acc = (lr_rowspace(ztr, y[tr], zte, C).argmax(1) == y[te]).mean()
                    res.setdefault((fs, C), []).append(acc)
        for fs in sets:
            best = max(C_GRID, key=lambda C: np.mean(res[(fs, C)]))
            names = " + ".join("%s@%d" % VIEWS[v] for v in fs.split())
            print("| %s | %d | %s | %.1f | %.1f (C=%d) |" % (
                ds, k, names, 100 * np.mean(res[(fs, 512)]), 100 * np.mean(res[(fs, best)]), best),
                flush=True)


def main():
    ensure_numpy()
    import json, numpy as np
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(PROJECT, "build"))
    p.add_argument("--datasets", default="clothing,sign-language-digits")
    p.add_argument("--k", default="2,3,5,10")
    p.add_argument("--seeds", default=",".join(str(s) for s in range(10)))
    p.add_argument("--power", default="1,0.5")
    p.add_argument("--work", default="/tmp/clsprobe")
    p.add_argument("--select", action="store_true")
    p.add_argument("--fusions", action="store_true")
    p.add_argument("--logits", action="store_true")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--compare", default="")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    tool = os.path.join(a.build, "bench", "bench_features")
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.compare:
        sets = [x.strip() for x in a.compare.split(";") if x.strip()]
        print("| dataset | k | feature set | C=512 | best C (hindsight) |")
        print("|---|---|---|---|---|")
        for ds in a.datasets.split(","):
            paths, rows = listing(ds, a.work)
            X = {v: features(tool, ds, paths, v, a.work) for v in set(" ".join(sets).split())}
            y = np.array([r[1] for r in rows])
            te = np.array([i for i, r in enumerate(rows) if r[0] == "test"])
            root = os.path.join(SHARED, "datasets", ds)
            train = json.load(open(os.path.join(root, "train.json")))
            compare_run(X, y, te, train, root, rows, sets, [int(x) for x in a.k.split(",")],
                        seeds, ds)
        return
    if a.augment:
        print("| dataset | k | training rows per image | C=512 | C=8192 | best C (hindsight) |")
        print("|---|---|---|---|---|---|")
        for ds in a.datasets.split(","):
            paths, rows = listing(ds, a.work)
            X = {v: features(tool, ds, paths, v, a.work) for v in ("l0", "l2")}
            y = np.array([r[1] for r in rows])
            te = np.array([i for i, r in enumerate(rows) if r[0] == "test"])
            root = os.path.join(SHARED, "datasets", ds)
            train = json.load(open(os.path.join(root, "train.json")))
            augment_run(tool, ds, rows, X, y, te, train, root,
                        [int(x) for x in a.k.split(",")], seeds, a.work)
        return
    if a.select or a.fusions or a.logits:
        print("| dataset | k | power | %s | top-1 %% (mean of %d seeds) |"
              % ("head picked among" if a.select else "feature set", len(seeds)))
        print("|---|---|---|---|---|")
    else:
        print("| dataset | k | feature set | power | head | top-1 %% (mean of %d seeds) |" % len(seeds))
        print("|---|---|---|---|---|---|")
    for ds in a.datasets.split(","):
        paths, rows = listing(ds, a.work)
        X = {v: features(tool, ds, paths, v, a.work) for v in (("l0", "l2") if a.logits else VIEWS)}
        L = {v: features(tool, ds, paths, v, a.work, "logits") for v in ("l0", "l2")} \
            if a.logits else {}
        y = np.array([r[1] for r in rows])
        K = int(y.max()) + 1
        te = np.array([i for i, r in enumerate(rows) if r[0] == "test"])
        train = json.load(open(os.path.join(SHARED, "datasets", ds, "train.json")))
        root = os.path.join(SHARED, "datasets", ds)
        for k in [int(x) for x in a.k.split(",")]:
            acc = {}
            for seed in seeds:
                tr = np.array(subset_rows(rows, root, train, k, seed))
                if a.select:
                    for pw in [float(x) for x in a.power.split(",")]:
                        for r, v in select(X, y, tr, te, K, pw, seed).items():
                            acc.setdefault((r, pw), []).append(v)
                    continue
                if a.logits:
                    for r, v in logit_sets(X, L, y, tr, te).items():
                        acc.setdefault((r, 1), []).append(v)
                    continue
                if a.fusions:
                    pw = float(a.power.split(",")[0])
                    for r, v in fusions(X, y, tr, te, K, pw, seed).items():
                        acc.setdefault((r, pw), []).append(v)
                    continue
                for fs in SETS:
                    vs = fs.split()
                    for pw in [float(x) for x in a.power.split(",")]:
                        ztr, zte = prep([X[v][tr] for v in vs], [X[v][te] for v in vs], pw)
                        for h, pred in heads(ztr, y[tr], zte, K).items():
                            acc.setdefault((fs, pw, h), []).append((pred == y[te]).mean())
            if a.select or a.fusions or a.logits:
                for (r, pw), v in acc.items():
                    print("| %s | %d | %g | %s | %.1f |" % (ds, k, pw, r, 100 * np.mean(v)), flush=True)
                continue
            for (fs, pw, h), v in acc.items():
                names = " + ".join("%s@%d" % VIEWS[x] for x in fs.split())
                print("| %s | %d | %s | %g | %s | %.1f |" % (ds, k, names, pw, h, 100 * np.mean(v)),
                      flush=True)


if __name__ == "__main__":
    main()
