#!/usr/bin/python3
"""test_detect_mkdata.py: makes small detection sets for test_detect.sh with the
standard library only (PNG writer of our own): filled shapes on textured
backgrounds, with the boxes the drawing used.

  test_detect_mkdata.py det OUT_DIR N SEED [W H]   N images with 1-3 shapes each
                                                   (plus one image without any),
                                                   COCO boxes relative (Azure)
  test_detect_mkdata.py one OUT.png SEED [W H]     one image; prints its boxes
                                                   as JSON [[cat, x, y, w, h]]
  test_detect_mkdata.py onecat OUT_DIR SEED        "square" in one image only

Categories: "disc" (a red disc) and "square" (a blue square). Backgrounds are
a noisy stripe or checker texture in muted colours, so a detector has to
find shapes rather than colours of whole images. Images are 200x140 unless
W H are given (not square on purpose: the detector squashes).
"""
import json, os, random, struct, sys, zlib

CATS = ["disc", "square"]


def png(w, h, px):
    raw = b"".join(b"\x00" + bytes(px[y * w * 3:(y + 1) * w * 3]) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def draw(rng, w, h, nshapes):
    px = bytearray(w * h * 3)
    kind = rng.randint(0, 1)
    period = rng.randint(6, 14)
    base = (rng.randint(120, 170), rng.randint(120, 170), rng.randint(100, 150))
    for y in range(h):
        for x in range(w):
            t = ((x + y) // period) % 2 if kind == 0 else ((x // period) + (y // period)) % 2
            n = rng.randint(-15, 15)
            c = [v + (25 if t else -25) + n for v in base]
            i = (y * w + x) * 3
            px[i:i + 3] = bytes(max(0, min(255, v)) for v in c)
    boxes = []
    tries = 0
    while len(boxes) < nshapes and tries < 200:
        tries += 1
        s = rng.randint(22, 48)
        x0, y0 = rng.randint(2, w - s - 2), rng.randint(2, h - s - 2)
        if any(x0 < bx + bw + 4 and bx < x0 + s + 4 and y0 < by + bh + 4 and by < y0 + s + 4
               for _, bx, by, bw, bh in boxes):
            continue
        cat = rng.randint(0, 1)
        r = s / 2
        for y in range(y0, y0 + s):
            for x in range(x0, x0 + s):
                if cat == 0 and (x + 0.5 - x0 - r) ** 2 + (y + 0.5 - y0 - r) ** 2 > r * r:
                    continue
                col = (215, 35, 35) if cat == 0 else (35, 60, 215)
                i = (y * w + x) * 3
                px[i:i + 3] = bytes(max(0, min(255, v + rng.randint(-10, 10))) for v in col)
        boxes.append((cat, x0, y0, s, s))
    return px, boxes


def dataset(out, n, seed, w=200, h=140, only_one_square=False):
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    images, anns = [], []
    for i in range(n + 1):
        nshapes = 0 if i == n else rng.randint(1, 3)
        px, boxes = draw(rng, w, h, nshapes)
        if only_one_square:  # every shape a disc except one square in image 0
            boxes = [(0 if not (i == 0 and j == 0) else 1, *b[1:]) for j, b in enumerate(boxes)]
            px, _ = draw(random.Random(seed * 1000 + i), w, h, 0)
            for cat, x0, y0, s, _ in boxes:
                r = s / 2
                for y in range(y0, y0 + s):
                    for x in range(x0, x0 + s):
                        if cat == 0 and (x + 0.5 - x0 - r) ** 2 + (y + 0.5 - y0 - r) ** 2 > r * r:
                            continue
                        k = (y * w + x) * 3
                        px[k:k + 3] = bytes((215, 35, 35) if cat == 0 else (35, 60, 215))
        name = f"images/s{seed}_{i}.png"
        with open(os.path.join(out, name), "wb") as f:
            f.write(png(w, h, px))
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for cat, x, y, bw, bh in boxes:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat + 1,
                         "bbox": [x / w, y / h, bw / w, bh / h], "area": bw * bh / (w * h)})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CATS)]}
    with open(os.path.join(out, "annotations.json"), "w") as f:
        json.dump(coco, f)


def main():
    cmd = sys.argv[1]
    if cmd == "det":
        wh = [int(v) for v in sys.argv[5:7]] if len(sys.argv) > 6 else [200, 140]
        dataset(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *wh)
    elif cmd == "onecat":
        dataset(sys.argv[2], 4, int(sys.argv[3]), only_one_square=True)
    elif cmd == "one":
        w, h = ([int(v) for v in sys.argv[4:6]] if len(sys.argv) > 5 else [200, 140])
        rng = random.Random(int(sys.argv[3]))
        px, boxes = draw(rng, w, h, 2)
        with open(sys.argv[2], "wb") as f:
            f.write(png(w, h, px))
        print(json.dumps([[CATS[c], x, y, bw, bh] for c, x, y, bw, bh in boxes]))
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
