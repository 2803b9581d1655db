"""bench/peers.py: ONNX Runtime and LiteRT on the networks bench_backbone
--export wrote (same graph, same weights), for bench/backbone_peers.sh.

Design: the engine writes everything the peers need (NAME.onnx, the photo's
pixels NAME.in.f32 and its own outputs NAME.outK.f32, one json line per
network in export.jsonl), so this file has no model knowledge of its own:
`check` runs each peer on the photo and fails unless every output is within
1e-4 (max abs) of the engine's; `time` prints one json line per case in
bench_backbone's format (median and best of N runs); `profile` sums ONNX
Runtime's own per-node profile (SessionOptions.enable_profiling) by op type.
LiteRT runs NAME.tflite, written from NAME.onnx by bench/onnx2tflite.py.

Usage: python peers.py check DIR [ort|litert ...]
       python peers.py time DIR RUNTIME THREADS BATCH REPS
       python peers.py profile DIR REPS
"""
import json
import os
import sys
import time

import numpy as np

TOL = 1e-4


def networks(d):
    with open(os.path.join(d, "export.jsonl")) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def photo(d, net):
    s = net["size"]
    return np.fromfile(os.path.join(d, net["name"] + ".in.f32"), np.float32).reshape(1, s, s, 3)


def engine_outputs(d, net):
    return [np.fromfile(os.path.join(d, f"{net['name']}.out{i}.f32"), np.float32).reshape(o["nhwc"])
            for i, o in enumerate(net["outputs"])]


class Ort:
    name = "onnxruntime"

    def __init__(self, d, net, threads, profile=None):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if profile:
            so.enable_profiling = True
            so.profile_file_prefix = profile
        self.s = ort.InferenceSession(os.path.join(d, net["name"] + ".onnx"), so,
                                      providers=["CPUExecutionProvider"])
        self.outs = [o.name for o in self.s.get_outputs()]

    def prepare(self, x):  # NHWC in, NCHW fed
        self.feed = {"image": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}

    def run(self):
        return [o.transpose(0, 2, 3, 1) for o in self.s.run(self.outs, self.feed)]


class Litert:
    name = "litert"

    def __init__(self, d, net, threads, profile=None):
        from ai_edge_litert.interpreter import Interpreter
        self.i = Interpreter(model_path=os.path.join(d, net["name"] + ".tflite"),
                             num_threads=threads)
        self.batch = 0

    def prepare(self, x):
        inp = self.i.get_input_details()[0]
        if self.batch != x.shape[0]:
            self.i.resize_tensor_input(inp["index"], list(x.shape))
            self.i.allocate_tensors()
            self.batch = x.shape[0]
        self.i.set_tensor(inp["index"], x)

    def run(self):
        self.i.invoke()
        outs = self.i.get_output_details()
        return [self.i.get_tensor(o["index"]) for o in outs]


RUNTIMES = {"ort": Ort, "litert": Litert}


def check(d, which):
    bad = 0
    for net in networks(d):
        x, ref = photo(d, net), engine_outputs(d, net)
        for w in which:
            rt = RUNTIMES[w](d, net, 1)
            rt.prepare(x)
            got = rt.run()
            if len(got) != len(ref):
                print(f"{net['name']}: {rt.name} gave {len(got)} outputs, engine {len(ref)}")
                bad += 1
                continue
            for k, (g, r) in enumerate(zip(got, ref)):
                err = float(np.max(np.abs(g - r))) if g.shape == r.shape else float("inf")
                # 1e-4 absolute; an output in pixels (the detector's wh, up to
                # ~300, where float32's step is 3e-5) gets 1e-5 of its largest value
                big = float(np.max(np.abs(r)))
                tol = max(TOL, 1e-5 * big)
                ok = err <= tol
                bad += not ok
                print(f"{net['name']}: {rt.name} output {k} {list(g.shape)} max abs diff "
                      f"{err:.3g} (max |engine| {big:.3g}, tolerance {tol:.3g}) "
                      f"{'ok' if ok else 'FAIL'}")
    return 1 if bad else 0


def time_case(d, which, threads, batch, reps):
    for net in networks(d):
        try:
            rt = RUNTIMES[which](d, net, threads)
        except Exception as e:  # a runtime that cannot load a network: say so, go on
            print(f"# {which} {net['name']}: {e}", file=sys.stderr)
            continue
        x = np.repeat(photo(d, net), batch, axis=0)
        rt.prepare(x)
        rt.run()  # warm-up
        t = []
        c0 = time.process_time()
        for _ in range(reps):
            t0 = time.perf_counter()
            rt.run()
            t.append((time.perf_counter() - t0) * 1e3 / batch)
        cpu = (time.process_time() - c0) * 1e3 / reps / batch
        t.sort()
        print(json.dumps({"runtime": rt.name, "model": net["model"], "case": net["case"],
                          "size": net["size"], "batch": batch, "threads": threads,
                          "ms_per_image": round(t[0], 3), "median_ms_per_image": round(t[len(t) // 2], 3),
                          "cpu_ms_per_image": round(cpu, 3)}), flush=True)


def conv_kind(args):
    """a profiled ONNX Runtime node's row: convolutions by kind as the
    engine's profile names them (bench_backbone --profile), from the shapes
    the profile records (input NCHW or NCHWc, weights [O, I/group, KH, KW])"""
    op = args.get("op_name", "?")
    shapes = [list(v.values())[0] for v in args.get("input_type_shape", [])]
    outs = [list(v.values())[0] for v in args.get("output_type_shape", [])]
    if "Conv" not in op or len(shapes) < 2 or len(shapes[1]) != 4 or not outs:
        return op
    x, w = shapes[0], shapes[1]
    cin = x[1] * (x[4] if len(x) == 5 else 1)
    kh, kw = w[2], w[3]
    s2 = outs[0][2] < x[2]
    if w[1] == 1 and cin > 1:
        k = f"{kh}x{kw}" if kh == kw and kh in (3, 5) else None
        return f"depthwise {k} {'s2' if s2 else 's1'}" if k else "depthwise other"
    if kh == 1 and kw == 1:
        return "conv 1x1 s2" if s2 else "conv 1x1"
    return "conv KxK (stem)"


def profile(d, reps):
    """ONNX Runtime's own profile, 1 thread, batch 1: kernel time per op type"""
    import tempfile
    for net in networks(d):
        with tempfile.TemporaryDirectory() as tmp:
            rt = Ort(d, net, 1, profile=os.path.join(tmp, "ort"))
            rt.prepare(photo(d, net))
            rt.run()
            for _ in range(reps):
                rt.run()
            path = rt.s.end_profiling()
            with open(path) as f:
                ev = json.load(f)
        per = {}
        runs = reps + 1
        for e in ev:
            if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
                continue
            op = conv_kind(e.get("args", {}))
            p = per.setdefault(op, [0.0, 0])
            p[0] += e["dur"] / 1e3
            p[1] += 1
        for op, (ms, calls) in sorted(per.items(), key=lambda kv: -kv[1][0]):
            print(json.dumps({"profile": net["name"], "runtime": "onnxruntime", "op": op,
                              "ms": round(ms / runs, 3), "calls": calls // runs}), flush=True)


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "check":
        return check(d, sys.argv[3:] or ["ort"])
    if cmd == "time":
        which, threads, batch, reps = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        time_case(d, which, threads, batch, reps)
        return 0
    if cmd == "profile":
        profile(d, int(sys.argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
