#!/usr/bin/python3
"""test_models_report_check.py: reads what test_models_report.sh gets from
the mount and from Chromium, with the standard library only.

  test_models_report_check.py png FILE    prints "WIDTH HEIGHT COLOURS INK"
      (a PNG decoded in full: COLOURS distinct colours, INK the share of
      pixels that are not near-white, in percent)
  test_models_report_check.py dom FILE    prints a JSON summary of a DOM dump:
      element counts (svg, img, figure.mistake, script, link), how many img
      sources are data: URIs of decodable JPEGs, the page's text
"""
import base64, html.parser, json, struct, sys, zlib


def png_pixels(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("not a PNG")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, t = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if zlib.crc32(t + body) & 0xffffffff != struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]:
            raise SystemExit("bad CRC in chunk %r" % t)
        if t == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise SystemExit("unsupported PNG variant")
            bpp = 3 if ctype == 2 else 4
        elif t == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        cur = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                cur[i] = (cur[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((a + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pr) & 255
        rows.append(bytes(cur))
        prev = cur
    return w, h, bpp, rows


def cmd_png(path):
    w, h, bpp, rows = png_pixels(open(path, "rb").read())
    colours, ink = set(), 0
    for r in rows:
        for x in range(0, w * bpp, bpp):
            px = r[x:x + 3]
            colours.add(px)
            if min(px) < 200:
                ink += 1
    print(w, h, len(colours), round(100.0 * ink / (w * h), 2))


class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.count = {"svg": 0, "img": 0, "mistake": 0, "script": 0, "link": 0, "jpeg": 0}
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in self.count:
            self.count[tag] += 1
        if tag == "figure" and "mistake" in (a.get("class") or ""):
            self.count["mistake"] += 1
        if tag == "img":
            src = a.get("src") or ""
            pre = "data:image/jpeg;base64,"
            if src.startswith(pre):
                jpg = base64.b64decode(src[len(pre):], validate=True)
                if jpg[:2] == b"\xff\xd8" and jpg[-2:] == b"\xff\xd9":
                    self.count["jpeg"] += 1

    def handle_data(self, data):
        self.text.append(data)


def cmd_dom(path):
    d = Dom()
    d.feed(open(path, encoding="utf-8").read())
    out = dict(d.count)
    out["text"] = " ".join(" ".join(d.text).split())
    print(json.dumps(out))


if __name__ == "__main__":
    {"png": cmd_png, "dom": cmd_dom}[sys.argv[1]](sys.argv[2])
