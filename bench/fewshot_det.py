#!/usr/bin/env python3
"""fewshot_det.py: few-shot detection benchmark (issue 5) through the mount.

Runs ../shared/acceptance/vfs.py's fewshot flow (the same k-image subsets, the
same independent mAP) for detection datasets, shots and seeds, with a given
visionfs binary, and prints mean and spread of mAP@50 and the training wall
time next to Azure Image Analysis 4.0's published averages.

  bench/fewshot_det.py run [--bin build/visionfs] [--datasets raccoon,blood-cells]
                           [--k 2,3,5,10,0] [--seeds 0,1,2] [--budget 5] [--out res.jsonl]
  bench/fewshot_det.py engine [--build build] [--datasets ...] [--k ...] [--seeds ...] [--budget 5]
                              [--cache DIR] [--threads 1] [--out res.jsonl]
  bench/fewshot_det.py table res.jsonl

"engine" runs BUILD/bench/bench_fewshot_det (bench/bench_fewshot_det.c),
which calls the recipe directly (no mount, features cached in --cache across runs),
for the whole table in little CPU time; its mAP is the engine's own (the mount
runs check that it equals an independent one).

k = 0 means every training image. Standard library only.
"""
import argparse, contextlib, io, json, os, statistics, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
SHARED = os.path.join(PROJECT, "..", "shared")
AZURE = {2: 49, 3: 61, 5: 68, 10: 75, 0: 85}


def run(args):
    sys.path.insert(0, os.path.join(SHARED, "acceptance"))
    import vfs
    vfs.BIN = os.path.abspath(args.bin)
    vfs.build = lambda: None
    if args.log:  # print each model's training log before the mount goes away
        close = vfs.Mount.close

        def close_with_log(m):
            with contextlib.suppress(OSError):
                sys.stderr.write(open(m.path("models", "m", "log")).read())
            close(m)
        vfs.Mount.close = close_with_log
    out = open(args.out, "a") if args.out else None
    for ds in args.datasets.split(","):
        for k in [int(x) for x in args.k.split(",")]:
            for seed in [int(x) for x in args.seeds.split(",")]:
                ns = argparse.Namespace(dataset=os.path.join(SHARED, "datasets", ds), k=k,
                                        seed=seed, budget=args.budget)
                buf = io.StringIO()
                t0 = time.time()
                try:
                    with contextlib.redirect_stdout(buf):
                        vfs.fewshot(ns)
                    res = json.loads(buf.getvalue().strip().splitlines()[-1])
                except Exception as e:  # one failed run does not stop the table
                    res = {"dataset": ds, "k": k, "seed": seed, "error": str(e)}
                res["wall_s"] = round(time.time() - t0, 1)
                line = json.dumps(res)
                print(line, flush=True)
                if out:
                    out.write(line + "\n")
                    out.flush()


def engine(args):
    exe = os.path.join(args.build, "bench", "bench_fewshot_det")
    if not os.access(exe, os.X_OK):
        sys.exit(exe + " not built (cmake --build BUILD --target bench_fewshot_det)")
    sys.path.insert(0, os.path.join(SHARED, "acceptance"))
    from vfs import subset
    import subprocess, tempfile
    out = open(args.out, "a") if args.out else None
    tmp = tempfile.mkdtemp(prefix="fewshot_det.")
    for ds in args.datasets.split(","):
        root = os.path.join(SHARED, "datasets", ds)
        train = json.load(open(os.path.join(root, "train.json")))
        for k in [int(x) for x in args.k.split(",")]:
            for seed in [int(x) for x in args.seeds.split(",")]:
                sub = os.path.join(tmp, f"{ds}_{k}_{seed}.json")
                json.dump(subset(train, k, seed), open(sub, "w"))
                t0 = time.time()
                p = subprocess.run([exe, root, sub, os.path.join(root, "test.json"), "--cache",
                                    args.cache, "--seed", str(seed), "--threads",
                                    str(args.threads), "--budget-min", str(args.budget)],
                               capture_output=True, text=True)
                if p.returncode != 0:
                    res = {"dataset": ds, "k": k, "seed": seed, "error": p.stderr[-500:]}
                else:
                    ev = json.loads(p.stdout.strip().splitlines()[-1])
                    m = ev["meanAveragePrecision50"]
                    res = {"dataset": ds, "k": k, "seed": seed, "train_images": ev["train_images"],
                           "budget_min": args.budget, "reported_map50": m, "measured_map50": m,
                           "train_s": round(ev["wall_s"], 1),
                           "cpu_min": ev["trainingCostInMinutes"],
                           "recipe": ev.get("recipe")}
                res["wall_s"] = round(time.time() - t0, 1)
                line = json.dumps(res)
                print(line, flush=True)
                if out:
                    out.write(line + "\n")
                    out.flush()


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    groups = {}
    for r in rows:
        if "error" in r:
            continue
        groups.setdefault((r["dataset"], r["k"]), []).append(r)
    print(f"{'dataset':<12} {'k':>4} {'runs':>4} {'mAP50 mean':>10} {'spread':>7} "
          f"{'train s':>8} {'cpu s':>6} {'azure':>6} {'rep=meas':>8}")
    for (ds, k), rs in sorted(groups.items(), key=lambda x: (x[0][0], x[0][1] or 999)):
        m = [r["measured_map50"] * 100 for r in rs]
        t = [r["train_s"] for r in rs]
        c = [r.get("cpu_min", 0) * 60 for r in rs]
        same = all(abs(r["measured_map50"] - (r["reported_map50"] or -1)) < 1e-9 for r in rs)
        sp = (max(m) - min(m)) if len(m) > 1 else 0
        print(f"{ds:<12} {k if k else 'all':>4} {len(rs):>4} {statistics.mean(m):>10.1f} "
              f"{sp:>7.1f} {statistics.mean(t):>8.1f} {statistics.mean(c):>6.1f} {AZURE.get(k, '-'):>6} "
              f"{str(same):>8}")


def tempfile_dir():
    import tempfile
    return tempfile.gettempdir()


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    r = sp.add_parser("run")
    r.add_argument("--bin", default=os.path.join(PROJECT, "build", "visionfs"))
    r.add_argument("--datasets", default="raccoon,blood-cells")
    r.add_argument("--k", default="10,2")
    r.add_argument("--seeds", default="0")
    r.add_argument("--budget", type=float, default=5)
    r.add_argument("--out")
    r.add_argument("--log", action="store_true", help="print the training log of each run")
    e = sp.add_parser("engine")
    e.add_argument("--build", default=os.path.join(PROJECT, "build"))
    e.add_argument("--datasets", default="raccoon,blood-cells")
    e.add_argument("--k", default="2,3,5,10,0")
    e.add_argument("--seeds", default="0,1,2")
    e.add_argument("--cache", default=os.path.join(tempfile_dir(), "fewshot_det_cache"))
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--budget", type=float, default=5, help="CPU minutes (bench_fewshot_det --budget-min)")
    e.add_argument("--out")
    t = sp.add_parser("table")
    t.add_argument("path")
    a = ap.parse_args()
    if a.cmd == "run":
        run(a)
    elif a.cmd == "engine":
        engine(a)
    else:
        table(a.path)


if __name__ == "__main__":
    main()
