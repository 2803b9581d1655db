#!/usr/bin/env python3
"""fewshot.py: few-shot classification benchmark (issue 4), two layers.

engine  runs build*/bench/bench_fewshot (the recipe called directly, no mount) on
        ../shared/datasets/{clothing,sign-language-digits}: for k shots per category
        (k=0 means all) and seeds, the same k-image subsets as the acceptance script
        (vfs.py subset()), one backbone at a time and the full search over all of
        them; prints top-1 mean and spread, training wall time and the winner next
        to the CenterNet linear-probe reference (BACKBONES.md) and Azure's average.
mount   the same through a mounted build/visionfs via ../shared/acceptance/vfs.py
        fewshot (one JSON line per run), with predict images/s through the mount and,
        right after, the engine's own rate on the same subset (one image per job, one
        thread each, as the mount runs them).

  bench/fewshot.py engine [--datasets clothing,sign-language-digits] [--k 2,5,10]
                          [--seeds 0] [--configs both,centernet,efficientnet-lite0]
                          [--budget-min 10] [--cache DIR] [--out results.jsonl]
                          [--build BUILD_DIR]
  bench/fewshot.py mount  [--datasets clothing] [--k 5] [--seeds 0] [--budget-min 5]
  bench/fewshot.py table  results.jsonl

Feature vectors are cached (--cache) across runs, so only the first run that needs
an image's features pays for them: training times of later runs are marked "warm".
Standard library only.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
SHARED = os.path.join(PROJECT, "..", "shared")
REF = {  # CenterNet linear probe, BACKBONES.md (k: top-1 %)
    "clothing": {2: 27.0, 5: 38.9, 10: 49.7},
    "sign-language-digits": {2: 43.1, 5: 57.4, 10: 69.8},
}
AZURE = {2: 73, 3: 76, 5: 79, 10: 81, 0: 91}
CONFIGS = {"both": "centernet,efficientnet-lite0", "centernet": "centernet",
           "all3": "centernet,efficientnet-lite0,efficientnet-lite2",
           "efficientnet-lite0": "efficientnet-lite0",
           "imagenet": "efficientnet-lite0,efficientnet-lite2"}


def subset(coco, k, seed):
    sys.path.insert(0, os.path.join(SHARED, "acceptance"))
    from vfs import subset as s
    return s(coco, k, seed)


def find_tool(build=None):
    if build:
        return os.path.join(build, "bench", "bench_fewshot")
    for b in ("build", "build-classify"):
        p = os.path.join(PROJECT, b, "bench", "bench_fewshot")
        if os.access(p, os.X_OK):
            return p
    raise SystemExit("bench_fewshot not built (cmake --build build --target bench_fewshot)")


def run_engine(a):
    tool = find_tool(a.build)
    out = open(a.out, "a") if a.out else None
    tmp = tempfile.mkdtemp(prefix="fewshot.")
    for ds in a.datasets.split(","):
        root = os.path.join(SHARED, "datasets", ds)
        train = json.load(open(os.path.join(root, "train.json")))
        for k in [int(x) for x in a.k.split(",")]:
            for seed in [int(x) for x in a.seeds.split(",")]:
                sub = os.path.join(tmp, "%s_k%d_s%d.json" % (ds, k, seed))
                json.dump(subset(train, k, seed), open(sub, "w"))
                for cfg in a.configs.split(","):
                    cmd = [tool, "--root", root, "--train", sub, "--test",
                           os.path.join(root, "test.json"), "--backbones", CONFIGS[cfg],
                           "--budget-min", str(a.budget_min), "--seed", str(seed),
                           "--threads", str(a.threads), "--predict", str(a.predict)]
                    if a.cache:
                        cmd += ["--cache", a.cache]
                    t0 = time.time()
                    p = subprocess.run(cmd, capture_output=True, text=True)
                    try:
                        r = json.loads(p.stdout.strip().splitlines()[-1])
                    except (ValueError, IndexError):
                        r = {"error": (p.stderr or p.stdout)[-300:]}
                    r.update({"dataset": ds, "k": k, "seed": seed, "config": cfg,
                              "run_wall_s": round(time.time() - t0, 1)})
                    line = json.dumps(r)
                    print(line, flush=True)
                    if out:
                        out.write(line + "\n")
                        out.flush()


def run_mount(a):
    """vfs.py through the mount, then the engine on the same subset right after
    (same machine state as far as possible): predict images/s of both."""
    vfs = os.path.join(SHARED, "acceptance", "vfs.py")
    env = dict(os.environ, VFS_PROJECT=a.project)
    tool = find_tool()
    tmp = tempfile.mkdtemp(prefix="fewshot-mount.")
    for ds in a.datasets.split(","):
        root = os.path.join(SHARED, "datasets", ds)
        train = json.load(open(os.path.join(root, "train.json")))
        ntest = len(json.load(open(os.path.join(root, "test.json")))["images"])
        for k in [int(x) for x in a.k.split(",")]:
            for seed in [int(x) for x in a.seeds.split(",")]:
                p = subprocess.run(["/usr/bin/python3", vfs, "fewshot", root, "--k", str(k),
                                    "--seed", str(seed), "--budget", str(a.budget_min)],
                                   capture_output=True, text=True, cwd=a.project, env=env)
                try:
                    r = json.loads(p.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    r = {"dataset": ds, "k": k, "seed": seed, "error": p.stderr[-400:]}
                sub = os.path.join(tmp, "%s_k%d_s%d.json" % (ds, k, seed))
                json.dump(subset(train, k, seed), open(sub, "w"))
                e = subprocess.run([tool, "--root", root, "--train", sub, "--test",
                                    os.path.join(root, "test.json"), "--seed", str(seed),
                                    "--budget-min", str(a.budget_min), "--predict", str(ntest),
                                    "--cache", a.cache], capture_output=True, text=True)
                try:
                    er = json.loads(e.stdout.strip().splitlines()[-1])
                    r["engine_top1"] = er["top1"]
                    r["engine_predict_img_per_s"] = er["predict_img_per_s"]
                    if r.get("predict_img_per_s"):
                        r["mount_vs_engine"] = round(r["predict_img_per_s"] /
                                                     er["predict_img_per_s"], 2)
                except (ValueError, IndexError, KeyError):
                    r["engine_error"] = e.stderr[-300:]
                print(json.dumps(r), flush=True)


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    groups = {}
    for r in rows:
        if "top1" in r:
            groups.setdefault((r["dataset"], r["k"], r["config"]), []).append(r)
    print("| dataset | k | backbones | top-1 % mean (sd, n) | train wall s | train CPU s | "
          "winner (last seed) | ref CenterNet probe | Azure |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (ds, k, cfg), rs in sorted(groups.items(), key=lambda x: (x[0][0], x[0][1] or 999,
                                                                 x[0][2])):
        t = [100 * r["top1"] for r in rs]
        sd = statistics.stdev(t) if len(t) > 1 else 0.0
        w = statistics.mean(r["train_wall_s"] for r in rs)
        c = statistics.mean(r["train_cpu_s"] for r in rs)
        rec = rs[-1].get("recipe", {})
        win = "%s %s%s" % ("+".join(rec.get("views", [])),
                           "C=%g" % rec["C"] if "C" in rec else "ncm",
                           " aug" if rec.get("augmentation", "none") != "none" else "")
        print("| %s | %s | %s | %.1f (%.1f, %d) | %.1f | %.1f | %s | %s | %s |" % (
            ds, k or "all", cfg, statistics.mean(t), sd, len(t), w, c, win,
            REF.get(ds, {}).get(k, "-"), AZURE.get(k, "-")))


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    e = sp.add_parser("engine")
    e.add_argument("--datasets", default="clothing,sign-language-digits")
    e.add_argument("--k", default="2,5,10")
    e.add_argument("--seeds", default="0")
    e.add_argument("--configs", default="both,efficientnet-lite0,centernet")
    e.add_argument("--budget-min", type=float, default=10)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--predict", type=int, default=0)
    e.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "fewshot-cache"))
    e.add_argument("--out", default="")
    e.add_argument("--build", default="", help="build folder whose bench/bench_fewshot to run")
    m = sp.add_parser("mount")
    m.add_argument("--datasets", default="clothing")
    m.add_argument("--k", default="5")
    m.add_argument("--seeds", default="0")
    m.add_argument("--budget-min", type=float, default=5)
    m.add_argument("--project", default=PROJECT, help="checkout whose build/visionfs to mount")
    m.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "fewshot-cache"))
    t = sp.add_parser("table")
    t.add_argument("results")
    a = ap.parse_args()
    if a.cmd == "engine":
        run_engine(a)
    elif a.cmd == "mount":
        run_mount(a)
    else:
        table(a.results)


if __name__ == "__main__":
    main()
