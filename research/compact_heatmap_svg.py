"""Re-encodes the cell grid of an attention-map SVG (`streamlm attention-map --out X.svg`) as one embedded PNG
per panel: the same pixels and text, about 1/20 of the bytes. Why: the maps are docs figures tracked in git,
and 4096 <rect> elements per panel cost 0.28 MB a file (the tracked tree must stay under 40 MB).

Lossless for the picture: every cell keeps its exact colour; empty cells show the panel's background.
Usage: python3 research/compact_heatmap_svg.py docs/img/attention-*.svg   (rewrites in place; stdlib only)
"""
import base64, re, struct, sys, zlib

RECT = re.compile(r'<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)" fill="([^"]+)"/>\n?')


def rgb(fill):
    m = re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill)
    if m:
        return tuple(int(v) for v in m.groups())
    h = fill.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def png(w, h, px):
    raw = b"".join(b"\0" + bytes(c for p in px[y * w:(y + 1) * w] for c in p) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def compact(svg):
    rects = [(m, tuple(int(v) for v in m.groups()[:4]), m.group(5)) for m in RECT.finditer(svg)]
    panels = [(r, f) for _, r, f in rects if r[2] > 50]          # the panel backgrounds (and the page)
    panels = [(r, f) for r, f in panels if not (r[0] == 0 and r[1] == 0)] if panels else []
    out, done = svg, 0
    for (px0, py0, pw, ph), bg in panels:
        cells = [(r, f) for _, r, f in rects
                 if r[2] <= 50 and px0 <= r[0] < px0 + pw and py0 <= r[1] < py0 + ph]
        if not cells:
            continue
        c = cells[0][0][2]
        assert all(r[2] == c and r[3] == c for r, _ in cells), "cells of unequal size"
        n = pw // c
        pix = [rgb(bg)] * (n * n)
        for (x, y, _, _), f in cells:
            pix[((y - py0) // c) * n + (x - px0) // c] = rgb(f)
        data = base64.b64encode(png(n, n, pix)).decode()
        img = (f'<image x="{px0}" y="{py0}" width="{pw}" height="{ph}" style="image-rendering:pixelated" '
               f'preserveAspectRatio="none" href="data:image/png;base64,{data}"/>\n')
        for (x, y, w, h), f in cells:
            out = out.replace(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{f}"/>\n', "", 1)
        bgrect = f'<rect x="{px0}" y="{py0}" width="{pw}" height="{ph}" fill="{bg}"/>\n'
        out = out.replace(bgrect, img, 1)
        done += len(cells)
    return out, done


for path in sys.argv[1:]:
    src = open(path).read()
    dst, n = compact(src)
    open(path, "w").write(dst)
    print(f"{path}: {n} cells -> PNG, {len(src)} -> {len(dst)} bytes")
