"""bench/onnx2tflite.py: the ONNX graphs bench_backbone --export writes, as
float32 .tflite flatbuffers for LiteRT (bench/backbone_peers.sh).

Design: no converter package installs here without TensorFlow or PyTorch,
so this writes the flatbuffer itself with the object API of the schema
module LiteRT ships (ai_edge_litert.schema_py_generated), for exactly the
ops eng_model_emit_onnx produces for the installed backbones: Conv (dense
and depthwise), Add/Sub/Mul/Div with a constant or a second map, Clip(0,6),
Relu, Sigmoid, ReduceMean over H,W, Resize (bilinear, asymmetric or
half-pixel or align-corners), Concat, Identity. Tensors become NHWC, so
weights are transposed (OIHW -> OHWI, depthwise [C,1,KH,KW] -> [1,KH,KW,C]),
constants of shape [1,C,1,1] become [C], and axes are renamed. Explicit pads
that equal TensorFlow's SAME rule become SAME, others a PAD op then VALID.
Relu/Relu6 right after a convolution is fused into it (as TFLite's own
converter does; the same min/max, so the result is unchanged). The hard-swish
of the graphs stays as its Add/Relu6/Mul/Mul: TFLite's HARD_SWISH computes
x*relu6(x+3)/6, which differs from CenterNet's float16 constant
0.1666259765625 by more than the 1e-4 the outputs are checked against.
Any other op stops the conversion with its name.

Usage: python onnx2tflite.py IN.onnx OUT.tflite
"""
import sys

import flatbuffers
import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from ai_edge_litert import schema_py_generated as S

OP = S.BuiltinOperator


class Writer:
    def __init__(self):
        self.tensors, self.buffers, self.ops, self.codes = [], [S.BufferT()], [], {}
        self.index = {}

    def code(self, op):
        if op not in self.codes:
            c = S.OperatorCodeT()
            c.builtinCode = op
            c.deprecatedBuiltinCode = min(op, 127)
            c.version = 1
            self.codes[op] = len(self.codes)
        return self.codes[op]

    def tensor(self, name, shape, data=None, dtype=S.TensorType.FLOAT32):
        t = S.TensorT()
        t.name = name
        t.shape = [int(s) for s in shape]
        t.type = dtype
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        self.index[name] = len(self.tensors) - 1
        return self.index[name]

    def const(self, name, arr):
        arr = np.asarray(arr)
        dt = S.TensorType.INT32 if arr.dtype.kind in "iu" else S.TensorType.FLOAT32
        arr = arr.astype(np.int32 if dt == S.TensorType.INT32 else np.float32)
        return self.tensor(name, arr.shape, arr, dt)

    def op(self, code, ins, outs, opt_type=0, opt=None):
        o = S.OperatorT()
        o.opcodeIndex = self.code(code)
        o.inputs, o.outputs = list(ins), list(outs)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        self.ops.append(o)
        return o


def same_pads(size, k, s, d):
    """TensorFlow's SAME padding (before, after) for one axis"""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def convert(src, dst):
    m = shape_inference.infer_shapes(onnx.load(src))
    g = m.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shape = {}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in v.type.tensor_type.shape.dim]
        shape[v.name] = dims
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    for o in g.output:
        consumers[o.name] = consumers.get(o.name, 0) + 1

    def nhwc(name):
        s = shape[name]
        return [s[0], s[2], s[3], s[1]] if len(s) == 4 else s

    w = Writer()
    alias = {}

    def ref(name):
        name = alias.get(name, name)
        if name in w.index:
            return w.index[name]
        if name in init:  # element-wise constant: scalar or [1,C,1,1] -> [C]
            a = init[name]
            if a.ndim == 4:
                if a.shape[0] != 1 or a.shape[2] != 1 or a.shape[3] != 1:
                    raise SystemExit(f"{src}: constant '{name}' {a.shape} is not per channel")
                a = a.reshape(a.shape[1])
            return w.const(name, a)
        return w.tensor(name, nhwc(name))

    for i in g.input:
        w.tensor(i.name, nhwc(i.name))
    attrs = lambda n: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    fused = set()
    nodes = list(g.node)
    for k, n in enumerate(nodes):
        if id(n) in fused:
            continue
        a = attrs(n)
        if n.op_type == "Conv":
            x = ref(n.input[0])
            wt = init[n.input[1]]
            co, ci_g, kh, kw = wt.shape
            group = a.get("group", 1)
            strides = a.get("strides", [1, 1])
            dil = a.get("dilations", [1, 1])
            pads = a.get("pads", [0, 0, 0, 0])
            _, _, ih, iw = shape[n.input[0]]
            bias = init[n.input[2]] if len(n.input) > 2 else np.zeros(co, np.float32)
            if pads == [0, 0, 0, 0]:
                padding = S.Padding.VALID
            elif ((pads[0], pads[2]) == same_pads(ih, kh, strides[0], dil[0])
                  and (pads[1], pads[3]) == same_pads(iw, kw, strides[1], dil[1])):
                padding = S.Padding.SAME
            else:
                pname = n.output[0] + "/pad"
                p = w.const(pname + "/paddings", [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]])
                s0 = shape[n.input[0]]
                xp = w.tensor(pname, [s0[0], ih + pads[0] + pads[2], iw + pads[1] + pads[3], s0[1]])
                w.op(OP.PAD, [x, p], [xp], S.BuiltinOptions.PadOptions, S.PadOptionsT())
                x, padding = xp, S.Padding.VALID
            act, out = S.ActivationFunctionType.NONE, n.output[0]
            nxt = nodes[k + 1] if k + 1 < len(nodes) else None
            if nxt is not None and consumers.get(out) == 1 and nxt.input[0] == out:
                if nxt.op_type == "Relu":
                    act = S.ActivationFunctionType.RELU
                elif nxt.op_type == "Clip" and [float(init[i]) for i in nxt.input[1:]] == [0.0, 6.0]:
                    act = S.ActivationFunctionType.RELU6
                if act != S.ActivationFunctionType.NONE:
                    fused.add(id(nxt))
                    out = nxt.output[0]
            y = w.tensor(out, nhwc(out))
            b = w.const(n.output[0] + "/bias", bias.astype(np.float32))
            if group == 1:
                f = w.const(n.input[1], wt.transpose(0, 2, 3, 1))  # OHWI
                o = S.Conv2DOptionsT()
                code, ot = OP.CONV_2D, S.BuiltinOptions.Conv2DOptions
            elif ci_g == 1:
                f = w.const(n.input[1], wt.transpose(1, 2, 3, 0))  # [1,KH,KW,C*M]
                o = S.DepthwiseConv2DOptionsT()
                o.depthMultiplier = co // group
                code, ot = OP.DEPTHWISE_CONV_2D, S.BuiltinOptions.DepthwiseConv2DOptions
            else:
                raise SystemExit(f"{src}: Conv '{n.name}' with group {group} is neither dense nor depthwise")
            o.padding, o.strideH, o.strideW = padding, strides[0], strides[1]
            o.dilationHFactor, o.dilationWFactor = dil[0], dil[1]
            o.fusedActivationFunction = act
            w.op(code, [x, f, b], [y], ot, o)
        elif n.op_type in ("Add", "Sub", "Mul", "Div"):
            ins = [ref(i) for i in n.input]
            y = w.tensor(n.output[0], nhwc(n.output[0]))
            opt = {"Add": (OP.ADD, S.BuiltinOptions.AddOptions, S.AddOptionsT),
                   "Sub": (OP.SUB, S.BuiltinOptions.SubOptions, S.SubOptionsT),
                   "Mul": (OP.MUL, S.BuiltinOptions.MulOptions, S.MulOptionsT),
                   "Div": (OP.DIV, S.BuiltinOptions.DivOptions, S.DivOptionsT)}[n.op_type]
            w.op(opt[0], ins, [y], opt[1], opt[2]())
        elif n.op_type in ("Relu", "Sigmoid") or n.op_type == "Clip":
            if n.op_type == "Clip" and [float(init[i]) for i in n.input[1:]] != [0.0, 6.0]:
                raise SystemExit(f"{src}: Clip '{n.name}' is not relu6")
            code = {"Relu": OP.RELU, "Sigmoid": OP.LOGISTIC, "Clip": OP.RELU6}[n.op_type]
            w.op(code, [ref(n.input[0])], [w.tensor(n.output[0], nhwc(n.output[0]))])
        elif n.op_type == "ReduceMean":
            if list(a["axes"]) != [2, 3] or a.get("keepdims", 1) != 1:
                raise SystemExit(f"{src}: ReduceMean '{n.name}' is not a mean over H,W kept")
            o = S.ReducerOptionsT()
            o.keepDims = True
            w.op(OP.MEAN, [ref(n.input[0]), w.const(n.output[0] + "/axes", [1, 2])],
                 [w.tensor(n.output[0], nhwc(n.output[0]))], S.BuiltinOptions.ReducerOptions, o)
        elif n.op_type == "Resize":
            if a.get("mode") != b"linear":
                raise SystemExit(f"{src}: Resize '{n.name}' is not linear")
            ct = a.get("coordinate_transformation_mode", b"half_pixel")
            o = S.ResizeBilinearOptionsT()
            o.alignCorners = ct == b"align_corners"
            o.halfPixelCenters = ct == b"half_pixel"
            if ct not in (b"align_corners", b"half_pixel", b"asymmetric"):
                raise SystemExit(f"{src}: Resize '{n.name}': {ct.decode()}")
            oh = nhwc(n.output[0])
            w.op(OP.RESIZE_BILINEAR, [ref(n.input[0]), w.const(n.output[0] + "/size", oh[1:3])],
                 [w.tensor(n.output[0], oh)], S.BuiltinOptions.ResizeBilinearOptions, o)
        elif n.op_type == "Concat":
            o = S.ConcatenationOptionsT()
            o.axis = [0, 3, 1, 2][a["axis"]]
            w.op(OP.CONCATENATION, [ref(i) for i in n.input],
                 [w.tensor(n.output[0], nhwc(n.output[0]))], S.BuiltinOptions.ConcatenationOptions, o)
        elif n.op_type == "Identity":
            alias[n.output[0]] = alias.get(n.input[0], n.input[0])
        else:
            raise SystemExit(f"{src}: op {n.op_type} ('{n.name}') has no translation here")

    sg = S.SubGraphT()
    sg.tensors, sg.operators, sg.name = w.tensors, w.ops, g.name
    sg.inputs = [w.index[i.name] for i in g.input]
    sg.outputs = [w.index[alias.get(o.name, o.name)] for o in g.output]
    model = S.ModelT()
    model.version = 3
    model.description = "visionfs bench: " + g.name
    model.operatorCodes = [None] * len(w.codes)
    for op, i in w.codes.items():
        c = S.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = op, min(op, 127), 1
        model.operatorCodes[i] = c
    model.subgraphs, model.buffers = [sg], w.buffers
    b = flatbuffers.Builder(1 << 20)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    with open(dst, "wb") as f:
        f.write(b.Output())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    convert(sys.argv[1], sys.argv[2])
