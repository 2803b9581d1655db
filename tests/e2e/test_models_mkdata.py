#!/usr/bin/python3
"""test_models_mkdata.py: makes small labelled image sets for the models/
end-to-end tests, with the standard library only (PNG writer of our own).

  test_models_mkdata.py cls OUT_DIR PER_CATEGORY SEED     classification set
  test_models_mkdata.py det OUT_DIR PER_CATEGORY SEED     detection set (boxes)
  test_models_mkdata.py one OUT.png CATEGORY SEED         one image of a category

Three categories that a pretrained backbone tells apart easily: red discs on
a light background, green horizontal stripes, blue/yellow checkerboards.
Each image varies position, size, phase and noise with the seed. OUT_DIR
gets images/*.png and annotations.json (COCO, Azure's flavour).
"""
import json, os, random, struct, sys, zlib

W = H = 96
CATS = ["disc", "stripes", "checker"]


def draw(cat, rng):
    px = bytearray(W * H * 3)
    cx, cy = rng.uniform(30, 66), rng.uniform(30, 66)
    r = rng.uniform(14, 26)
    period = rng.randint(8, 16)
    phase = rng.randint(0, period)
    cell = rng.randint(10, 18)
    for y in range(H):
        for x in range(W):
            n = rng.randint(-12, 12)
            if cat == "disc":
                inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
                c = (220, 30, 30) if inside else (235, 235, 225)
            elif cat == "stripes":
                c = (30, 170, 40) if ((y + phase) // (period // 2)) % 2 == 0 else (20, 60, 20)
            else:
                c = (30, 40, 200) if ((x // cell) + (y // cell)) % 2 == 0 else (230, 210, 40)
            i = (y * W + x) * 3
            px[i:i + 3] = bytes(max(0, min(255, v + n)) for v in c)
    box = [cx - r, cy - r, 2 * r, 2 * r] if cat == "disc" else [0, 0, W, H]
    return px, box


def png(px):
    raw = b"".join(b"\x00" + bytes(px[y * W * 3:(y + 1) * W * 3]) for y in range(H))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def dataset(kind, out, per, seed):
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    coco = {"images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CATS)]}
    n = 0
    for ci, cat in enumerate(CATS):
        for k in range(per):
            n += 1
            px, box = draw(cat, rng)
            name = f"images/{cat}_{seed}_{k}.png"
            with open(os.path.join(out, name), "wb") as f:
                f.write(png(px))
            coco["images"].append({"id": n, "width": W, "height": H, "file_name": name})
            a = {"id": n, "image_id": n, "category_id": ci + 1}
            if kind == "det":
                a["bbox"] = [round(box[0] / W, 4), round(box[1] / H, 4),
                             round(box[2] / W, 4), round(box[3] / H, 4)]
                a["area"] = round(box[2] * box[3] / (W * H), 4)
            coco["annotations"].append(a)
    with open(os.path.join(out, "annotations.json"), "w") as f:
        json.dump(coco, f)


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    kind, out, a, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if kind in ("cls", "det"):
        dataset(kind, out, int(a), seed)
    elif kind == "one":
        px, _ = draw(a, random.Random(seed))
        with open(out, "wb") as f:
            f.write(png(px))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
