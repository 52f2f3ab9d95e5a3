"""Writes data/digits28.csv: the shipped 8x8 digits (examples/data/digits.csv)
scaled up to 28x28 by bilinear interpolation, pixels rounded to whole numbers
0..16, columns p0..p783 and label. The mlp-wide and cnn workloads read it in
every system (nnc's `csv` source, NumPy in the peers). Pure Python, no
dependencies; about 4 MB, generated, never committed."""

import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "examples", "data", "digits.csv")
TARGET = os.path.join(HERE, "data", "digits28.csv")
SIDE_IN, SIDE_OUT = 8, 28


def upsample(pixels):
    """Bilinear interpolation of an 8x8 image onto a 28x28 grid whose pixel
    centres span the same square (align-corners style)."""
    out = []
    scale = (SIDE_IN - 1) / (SIDE_OUT - 1)
    for r in range(SIDE_OUT):
        y = r * scale
        y0 = min(int(y), SIDE_IN - 2)
        fy = y - y0
        for c in range(SIDE_OUT):
            x = c * scale
            x0 = min(int(x), SIDE_IN - 2)
            fx = x - x0
            p = lambda i, j: pixels[i * SIDE_IN + j]
            top = p(y0, x0) * (1 - fx) + p(y0, x0 + 1) * fx
            bottom = p(y0 + 1, x0) * (1 - fx) + p(y0 + 1, x0 + 1) * fx
            out.append(int(round(top * (1 - fy) + bottom * fy)))
    return out


def main():
    if os.path.exists(TARGET) and os.path.getmtime(TARGET) >= os.path.getmtime(__file__):
        return
    os.makedirs(os.path.dirname(TARGET), exist_ok=True)
    with open(SOURCE, newline="") as f:
        rows = list(csv.DictReader(f))
    tmp = TARGET + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"p{i}" for i in range(SIDE_OUT * SIDE_OUT)] + ["label"])
        for row in rows:
            pixels = [float(row[f"p{i}"]) for i in range(SIDE_IN * SIDE_IN)]
            w.writerow(upsample(pixels) + [row["label"]])
    os.replace(tmp, TARGET)
    print(f"wrote {TARGET} ({len(rows)} rows)", file=sys.stderr)


if __name__ == "__main__":
    main()
