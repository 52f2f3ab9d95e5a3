"""How much of `passages(task: pair)` is learnable from the seam alone.

A character 5-gram model (interpolated, fitted to the training text: the
first 90% of shakespeare.txt) scores each validation pair by how much more
likely b's first six characters are after a's last characters than on
their own; a positive score says "b follows a". The pairs are cut as the
generator cuts them (30 + 31 characters, b the sequel or from anywhere
else in the held-out end), with Python's own seeded random numbers, so the
pairs are not the same ones nnc draws, only drawn the same way.

    python3 examples/data/pair_ngram.py   # prints the accuracy (0.856)
"""

import collections
import math
import pathlib
import random

ORDER = 5
VOCAB = 80
FIRST, SECOND = 30, 31  # (64 - 3) / 2 and the rest, as passages() cuts


def main():
    text = (pathlib.Path(__file__).parent / "shakespeare.txt").read_text()
    split = int(len(text) * 0.9)
    train, val = text[:split], text[split:]
    counts = [collections.Counter() for _ in range(ORDER + 1)]
    contexts = [collections.Counter() for _ in range(ORDER + 1)]
    for i in range(len(train)):
        for n in range(min(i, ORDER) + 1):
            counts[n][train[i - n : i + 1]] += 1
            contexts[n][train[i - n : i]] += 1

    def log_p(context, c):
        p = 1.0 / VOCAB
        for n in range(min(len(context), ORDER) + 1):
            h = context[len(context) - n :]
            total = contexts[n][h]
            if total == 0:
                break
            weight = total / (total + 5)
            p = weight * counts[n][h + c] / total + (1 - weight) * p
        return math.log(p)

    def score(a, b, m=6):
        return sum(log_p(a[-ORDER:] + b[:j], b[j]) - log_p(b[:j], b[j]) for j in range(m))

    rng = random.Random(1)
    right = total = 0
    for _ in range(4000):
        p = rng.randrange(0, len(val) - FIRST - SECOND)
        q = p + FIRST
        if rng.random() >= 0.5:
            while abs(q - (p + FIRST)) <= FIRST + SECOND:
                q = rng.randrange(0, len(val) - SECOND)
        follows = q == p + FIRST
        right += (score(val[p : p + FIRST], val[q : q + SECOND]) > 0) == follows
        total += 1
    print(f"{right / total:.3f} of {total} validation pairs right")


if __name__ == "__main__":
    main()
