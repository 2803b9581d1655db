#!/usr/bin/python3
"""mkimg.py: writes small real test images (PNG or BMP) with the standard
library only, so the end-to-end tests need no image tools.

  mkimg.py OUT.png W H [SEED]      a W x H RGB PNG with a seeded pattern
  mkimg.py OUT.bmp W H [SEED]      the same as a 24-bit BMP
  mkimg.py --big OUT SIZE_BYTES    a file of SIZE_BYTES (a PNG header, then noise)
"""
import random, struct, sys, zlib


def pixels(w, h, seed):
    rng = random.Random(seed)
    base = [rng.randrange(256) for _ in range(3)]
    rows = []
    for y in range(h):
        row = bytearray()
        for x in range(w):
            row += bytes(((base[0] + x * 3) & 255, (base[1] + y * 5) & 255, (base[2] + (x ^ y)) & 255))
        rows.append(bytes(row))
    return rows


def png(w, h, seed):
    raw = b"".join(b"\x00" + r for r in pixels(w, h, seed))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def bmp(w, h, seed):
    pad = (4 - (w * 3) % 4) % 4
    body = b"".join(b"".join(r[i:i + 3][::-1] for i in range(0, len(r), 3)) + b"\x00" * pad
                    for r in reversed(pixels(w, h, seed)))
    return (b"BM" + struct.pack("<IHHI", 54 + len(body), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(body), 2835, 2835, 0, 0) + body)


def main():
    a = sys.argv[1:]
    if a and a[0] == "--big":
        out, size = a[1], int(a[2])
        rng = random.Random(1)
        with open(out, "wb") as f:
            f.write(png(64, 64, 1)[:33])
            left = size - 33
            while left > 0:
                n = min(left, 1 << 20)
                f.write(rng.randbytes(n))
                left -= n
        return
    out, w, h = a[0], int(a[1]), int(a[2])
    seed = int(a[3]) if len(a) > 3 else 0
    data = bmp(w, h, seed) if out.endswith(".bmp") else png(w, h, seed)
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
