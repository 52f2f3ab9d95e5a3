#!/usr/bin/env python3
"""Builds plays.csv from shakespeare.txt: passages of the eight plays, each
labelled with the play it comes from, for examples/text_classify.nn.

Each play's text from its first act on (the cast list and title dropped),
with every run of whitespace made one space, is cut into passages of whole
words of at most 128 characters; every second passage is kept. The columns
are `passage` (quoted when it holds a comma or a quote), `play` (its name)
and `label` (the play's number, 0..7, in the order below).

Run from anywhere: python3 examples/data/make_plays.py [OUT_DIR]
(plays.csv goes beside this script unless OUT_DIR is given).
"""

import csv
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (title as printed in shakespeare.txt, short name), in the file's order.
PLAYS = [
    ("HAMLET, PRINCE OF DENMARK", "hamlet"),
    ("MACBETH", "macbeth"),
    ("THE TRAGEDY OF KING LEAR", "lear"),
    ("OTHELLO, THE MOOR OF VENICE", "othello"),
    ("ROMEO AND JULIET", "romeo_juliet"),
    ("JULIUS CAESAR", "julius_caesar"),
    ("THE TEMPEST", "tempest"),
    ("A MIDSUMMER NIGHT'S DREAM", "midsummer"),
]
LONGEST = 128
KEEP_EVERY = 2


def plays(text):
    """The text of each play, in order."""
    starts = []
    for title, _ in PLAYS:
        at = text.find(title + "\n\nby William Shakespeare")
        if at < 0:
            raise SystemExit(f"cannot find the title {title!r}")
        starts.append(at)
    ends = starts[1:] + [len(text)]
    return [text[a:b] for a, b in zip(starts, ends)]


def passages(play):
    """Whitespace-normalized passages of whole words from the first act on."""
    first_act = re.search(r"^ACT (I|1)\b", play, re.IGNORECASE | re.MULTILINE)
    if first_act is None:
        raise SystemExit("a play without an ACT I line")
    words = play[first_act.start():].split()
    out, current = [], ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if len(candidate) > LONGEST and current:
            out.append(current)
            current = word[:LONGEST]
        else:
            current = candidate[:LONGEST]
    if current:
        out.append(current)
    return out[::KEEP_EVERY]


def main():
    with open(os.path.join(HERE, "shakespeare.txt"), encoding="utf-8") as f:
        text = f.read()
    rows = []
    for label, ((_, name), play) in enumerate(zip(PLAYS, plays(text))):
        rows.extend((passage, name, label) for passage in passages(play))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else HERE
    with open(os.path.join(out_dir, "plays.csv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["passage", "play", "label"])
        writer.writerows(rows)
    counts = {name: sum(1 for r in rows if r[1] == name) for _, name in PLAYS}
    print(f"plays.csv: {len(rows)} passages; " + ", ".join(f"{n} {c}" for n, c in counts.items()))


if __name__ == "__main__":
    main()
