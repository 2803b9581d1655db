#!/usr/bin/python3
"""test_models_onnx_mkmodel.py: writes classifier model files (the
model.safetensors layout of docs/model-format.md) that training may not
pick on a small set, so that test_models_onnx.sh can import them and check
their ONNX export against predict/: seeded random heads and tails, real
backbones.

  test_models_onnx_mkmodel.py multiview BACKBONES_DIR OUT   4 views, 3 sizes, 2 backbones
  test_models_onnx_mkmodel.py finetune BACKBONES_DIR OUT    a tail from blocks_10/add
                                                            averaged with the linear head
  test_models_onnx_mkmodel.py finetune-alone BACKBONES_DIR OUT   the same tail scoring alone
  test_models_onnx_mkmodel.py logits BACKBONES_DIR OUT      a view on the ImageNet logits (a
                                                            Reshape: predict/ runs it, the
                                                            export refuses it)
  test_models_onnx_mkmodel.py detector-variant DETECTOR.safetensors OUT
      the trained detector changed to take the other branch of everything the
      export translates: letterbox, no flip averaging, no NMS, no
      calibration, no hidden layer (a seeded heatmap 1x1 on the features)
  test_models_onnx_mkmodel.py detector-tiled DETECTOR.safetensors OUT
      the trained detector as a tiled one (version 2, preprocessing.tiles:
      2 x 2 tiles and the whole image): predict/ runs it, the export refuses it
  test_models_onnx_mkmodel.py detector-prior DETECTOR.safetensors OUT
      the trained detector with a box-size prior (version 3,
      preprocessing.size_prior at weight 0.5, box.size_prior: seeded
      sizes of 8-40% of the image per category)
Standard library only.
"""
import json, math, random, struct, sys

CATS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def write(path, meta, tensors):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, (shape, vals) in tensors.items():
        data = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def checksum(bdir, name):
    return json.load(open(f"{bdir}/{name}/backbone.json"))["checksum"]


def rnd(rng, n, s):
    return [rng.gauss(0, s) for _ in range(n)]


def base_meta(bbs, views, vw):
    return {
        "format": "visionfs", "kind": "classifier", "version": "1",
        "categories": json.dumps(CATS),
        "backbones": json.dumps(bbs),
        "backbone": "+".join(b["name"] for b in bbs),
        "backbone_checksum": ",".join(b["checksum"] for b in bbs),
        "preprocessing": json.dumps({"views": views, "resize": "squash bilinear (aspect not kept)",
                                     "pooling": "global average", "view_weight": vw}),
        "recipe": json.dumps({"head": "test", "note": "made by test_models_onnx_mkmodel.py"}),
    }


def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__")
    data = b[8 + n:]
    t = {}
    for name, v in header.items():
        lo, hi = v["data_offsets"]
        t[name] = (v["shape"], list(struct.unpack("<%df" % ((hi - lo) // 4), data[lo:hi])))
    return meta, t


def detector_variant(src, out, rng):
    meta, t = read(src)
    pre = json.loads(meta["preprocessing"])
    pre.update({"letterbox": 1, "flip_average": 0, "nms_iou": 0, "hidden": 0})
    pre.pop("calibration", None)
    meta["preprocessing"] = json.dumps(pre)
    f, c = pre["features_dim"], len(json.loads(meta["categories"]))
    for k in ("heatmap.hidden.weight", "heatmap.hidden.bias"):
        t.pop(k, None)
    t["heatmap.weight"] = ([f, c], rnd(rng, f * c, 0.3))
    t["heatmap.bias"] = ([c], [-3.0] * c)
    write(out, meta, t)


def detector_tiled(src, out):
    meta, t = read(src)
    pre = json.loads(meta["preprocessing"])
    pre["tiles"] = {"per_side": 2, "span": 0.6, "whole_image": 1}
    meta["preprocessing"] = json.dumps(pre)
    meta["version"] = "2"
    write(out, meta, t)


def detector_prior(src, out, rng):
    meta, t = read(src)
    pre = json.loads(meta["preprocessing"])
    pre["size_prior"] = {"weight": 0.5}
    meta["preprocessing"] = json.dumps(pre)
    meta["version"] = "3"
    c = len(json.loads(meta["categories"]))
    t["box.size_prior"] = ([c, 2], [math.log(rng.uniform(0.08, 0.4)) for _ in range(2 * c)])
    write(out, meta, t)


def main():
    kind, bdir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    rng = random.Random(7)
    if kind == "detector-variant":
        detector_variant(bdir, out, rng)
        return
    if kind == "detector-tiled":
        detector_tiled(bdir, out)
        return
    if kind == "detector-prior":
        detector_prior(bdir, out, rng)
        return
    C = len(CATS)
    if kind == "multiview":
        bbs = [{"name": "efficientnet-lite0", "checksum": checksum(bdir, "efficientnet-lite0")},
               {"name": "centernet", "checksum": checksum(bdir, "centernet")}]
        views = [{"backbone": 0, "size": 224, "tap": "head/relu6", "dim": 1280, "power": 0.5},
                 {"backbone": 0, "size": 224, "tap": "blocks_15/project", "dim": 320, "power": 0.5},
                 {"backbone": 0, "size": 352, "tap": "head/relu6", "dim": 1280, "power": 0.5},
                 {"backbone": 1, "size": 320, "tap": "tower_0/extern1/hard_swish/mul_1", "dim": 480}]
        t = {}
        for i, v in enumerate(views):
            t[f"view.{i}.mean"] = ([v["dim"]], [abs(x) for x in rnd(rng, v["dim"], 0.2)])
        D = sum(v["dim"] for v in views)
        t["head.weight"] = ([D, C], rnd(rng, D * C, 2.0))
        t["head.bias"] = ([C], rnd(rng, C, 0.3))
        write(out, base_meta(bbs, views, 0.5), t)
        return
    bbs = [{"name": "efficientnet-lite0", "checksum": checksum(bdir, "efficientnet-lite0")}]
    if kind == "multilabel":
        # a sigmoid per tag and thresholds spread so some tags pass and some do not
        views = [{"backbone": 0, "size": 224, "tap": "head/relu6", "dim": 1280, "power": 0.5}]
        t = {"view.0.mean": ([1280], [abs(x) for x in rnd(rng, 1280, 0.2)]),
             "head.weight": ([1280, C], rnd(rng, 1280 * C, 4.0)),
             "head.bias": ([C], rnd(rng, C, 1.0)),
             "head.threshold": ([C], [0.1, 0.3, 0.5, 0.7, 0.9][:C])}
        meta = base_meta(bbs, views, 1.0)
        meta["kind"] = "multilabel"
        write(out, meta, t)
        return
    if kind == "logits":
        views = [{"backbone": 0, "size": 224, "tap": "logits", "dim": 1000}]
        t = {"view.0.mean": ([1000], rnd(rng, 1000, 0.1)),
             "head.weight": ([1000, C], rnd(rng, 1000 * C, 2.0)),
             "head.bias": ([C], rnd(rng, C, 0.3))}
        write(out, base_meta(bbs, views, 1.0), t)
        return
    views = [{"backbone": 0, "size": 224, "tap": "head/relu6", "dim": 1280, "power": 0.5}]
    t = {"view.0.mean": ([1280], [abs(x) for x in rnd(rng, 1280, 0.2)]),
         "head.weight": ([1280, C], rnd(rng, 1280 * C, 2.0)),
         "head.bias": ([C], rnd(rng, C, 0.3))}
    # 14x14x112 at blocks_10/add -> 7x7x128: 1x1, depthwise 3x3 stride 2
    # (TF SAME: the extra row/column at the bottom/right), 1x1, a strided
    # 1x1 shortcut, add, 1x1 with hard-swish
    nodes = [("n0", "conv", [-1], 1, "relu6", [1, 1, 112, 96]),
             ("n1", "depthwise", [0], 2, "relu6", [3, 3, 96, 1]),
             ("n2", "conv", [1], 1, "none", [1, 1, 96, 64]),
             ("n3", "conv", [-1], 2, "relu", [1, 1, 112, 64]),
             ("n4", "add", [2, 3], 1, "none", None),
             ("n5", "conv", [4], 1, "hard_swish", [1, 1, 64, 128])]
    desc = []
    for name, op, ins, stride, act, w in nodes:
        desc.append({"name": name, "op": op, "in": ins, "stride": stride, "activation": act})
        if w:
            n = w[0] * w[1] * w[2] * w[3]
            fan = w[0] * w[1] * (1 if op == "depthwise" else w[2])
            t[f"finetune.{name}.weights"] = (w, rnd(rng, n, (2.0 / fan) ** 0.5))
            cout = w[2] if op == "depthwise" else w[3]
            t[f"finetune.{name}.bias"] = ([cout], rnd(rng, cout, 0.1))
    t["finetune.dense.weights"] = ([128, C], rnd(rng, 128 * C, 0.5))
    t["finetune.dense.bias"] = ([C], rnd(rng, C, 0.1))
    meta = base_meta(bbs, views, 1.0)
    meta["finetune"] = json.dumps({"backbone": 0, "size": 224, "scores": "alone" if kind == "finetune-alone" else "average with the linear head",
                                   "tap": "blocks_10/add", "nodes": desc})
    write(out, meta, t)


main()
