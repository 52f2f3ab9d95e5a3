"""Writes noisy_sine.csv: 30 points (x, y), x spread evenly over [0, 1) (one
uniform draw in each thirtieth) and y = sin(2 pi x) plus Gaussian noise of
standard deviation 0.3, from a fixed seed. The lecture's picture of
overfitting: a curve simple enough for a small network, noisy enough that a
large one can fit the noise. Run: python3 noisy_sine.py > noisy_sine.csv
"""

import math
import random

N, NOISE, SEED = 30, 0.3, 7

rng = random.Random(SEED)
xs = [(i + rng.random()) / N for i in range(N)]
print("x,y")
for x in xs:
    y = math.sin(2 * math.pi * x) + rng.gauss(0.0, NOISE)
    print(f"{x:.4f},{y:.4f}")
