#!/usr/bin/python3
"""mkbombs.py: small image files (a few hundred bytes) whose headers declare
60000 x 60000 pixels, one per format the tree reads (PNG, JPEG, WebP, TIFF,
GIF): a decoder that trusted the header would ask for ~10 GB.

  mkbombs.py OUT_DIR        writes bomb.png bomb.jpg bomb.webp bomb.tif bomb.gif
Standard library only; the layouts are those of the formats' specifications.
"""
import os, struct, sys, zlib

W = H = 60000


def png():
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


def jpeg():
    def seg(marker, data):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data
    dqt = seg(0xDB, b"\x00" + bytes([1] * 64))
    sof = seg(0xC0, struct.pack(">BHHB", 8, H, W, 1) + b"\x01\x11\x00")
    # a Huffman table with one code of each length 1 (DC and AC), so headers parse
    dht = seg(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00") + \
        seg(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")
    sos = seg(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return b"\xff\xd8" + dqt + sof + dht + sos + b"\x00" * 64 + b"\xff\xd9"


def webp():
    vp8x = struct.pack("<I", 0) + (W - 1).to_bytes(3, "little") + (H - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    # a 1x1 lossless bitstream after it (its size does not match the canvas)
    vp8l = b"\x2f" + struct.pack("<I", 0) + b"\x00" * 8
    body += b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff():
    entries = [(256, 4, 1, W), (257, 4, 1, H), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, H), (279, 4, 1, 64)]
    ifd_size = 2 + 12 * len(entries) + 4
    data_at = 8 + ifd_size
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_at
        if typ == 3:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    return out + struct.pack("<I", 0) + b"\x00" * 64


def gif():
    head = b"GIF89a" + struct.pack("<HHBBB", W, H, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, W, H, 0) + b"\x02\x02\x44\x01\x00"
    return head + image + b";"


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fn in (("bomb.png", png), ("bomb.jpg", jpeg), ("bomb.webp", webp),
                     ("bomb.tif", tiff), ("bomb.gif", gif)):
        with open(os.path.join(out, name), "wb") as f:
            f.write(fn())


if __name__ == "__main__":
    main()
