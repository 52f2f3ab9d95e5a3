"""What the three systems share: the six workloads (sizes, optimizer and its
hyper-parameters, batch, the nnc file that states them), the data each
system reads (NumPy batches drawn from the same shipped files), thread
pinning, the timing loop and the host description.

Imported by run.py (the runner, no NumPy needed there) and by the peers'
measurement scripts torch_models.py and jax_models.py."""

import os
import platform
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DIGITS = os.path.join(ROOT, "examples", "data", "digits.csv")
DIGITS28 = os.path.join(HERE, "data", "digits28.csv")
SHAKESPEARE = os.path.join(ROOT, "examples", "data", "shakespeare.txt")

ADAM = dict(name="adam", lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clip_norm=None)

# Every workload: its model kind and sizes, batch, optimizer, and how nnc
# runs it (file, `--set` constants, `--batch`). `steps` is the default count
# of timed steps (`--steps-scale` multiplies it), `warmup` the untimed
# steps every system runs after compiling (nnc's `bench --warmup`). A
# warm-up of at least 12 covers nnc's start-up calibration, as it covers
# JAX's tracing: the step-time tuner's first comparison of the team with
# one thread (steps 3-10, up to three of them on one thread). gpt-small's
# 8 steps end before it starts.
WORKLOADS = {
    "mlp": dict(
        kind="mlp", sizes=[64, 128, 10], batch=64, data="digits8", optimizer=dict(ADAM),
        nnc=dict(file="mlp.nn", set={}, batch=None), steps=400, warmup=20,
        label="mlp 64-128-10, b64, Adam",
    ),
    "mlp-wide": dict(
        kind="mlp", sizes=[784, 1024, 1024, 10], batch=128, data="digits28", optimizer=dict(ADAM),
        nnc=dict(file="mlp_wide.nn", set={}, batch=None), steps=40, warmup=12,
        label="mlp-wide 784-1024-1024-10, b128, Adam",
    ),
    "cnn": dict(
        kind="cnn", batch=64, data="digits28", optimizer=dict(ADAM),
        nnc=dict(file="cnn.nn", set={}, batch=None), steps=30, warmup=12,
        label="cnn 28x28, conv16-pool-conv32-pool-fc, b64, Adam",
    ),
    "lstm": dict(
        kind="lstm", vocab=65, embed=64, hidden=128, context=32, batch=32, data="text",
        optimizer=dict(ADAM, lr=2e-3, clip_norm=1.0),
        nnc=dict(file="lstm.nn", set={}, batch=None), steps=30, warmup=12,
        label="lstm char LM, V65, E64, h128, T32, b32, Adam, clip",
    ),
    "gpt-tiny": dict(
        kind="gpt", vocab=65, d=128, heads=4, layers=2, context=64, batch=32, data="text",
        optimizer=dict(ADAM, name="adamw", lr=3e-4, weight_decay=0.1, clip_norm=1.0),
        nnc=dict(file="gpt.nn", set={}, batch=None), steps=20, warmup=12,
        label="gpt-tiny V65, d128, 4 heads, 2 layers, T64, b32, AdamW, clip",
    ),
    "gpt-small": dict(
        kind="gpt", vocab=65, d=384, heads=6, layers=6, context=128, batch=16, data="text",
        optimizer=dict(ADAM, name="adamw", lr=3e-4, weight_decay=0.1, clip_norm=1.0),
        nnc=dict(file="gpt.nn", set={"D": 384, "HEADS": 6, "LAYERS": 6, "T": 128}, batch=16),
        steps=6, warmup=2,
        label="gpt-small d384, 6 heads, 6 layers, T128, b16, AdamW, clip",
    ),
}


def pin_threads(threads):
    """Restricts this process to `threads` CPUs when it may use more, so
    every system (XLA sizes its pool from the affinity mask) sees the same
    cores. Returns the CPUs kept."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > threads:
        cpus = cpus[:threads]
        os.sched_setaffinity(0, cpus)
    return cpus


def thread_env(threads):
    """Environment variables that fix the thread count of OpenMP/MKL/XLA
    and nnc, set before a system is imported."""
    return {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "NNC_THREADS": str(threads),
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


# ----------------------------------------------------------------- data

def _digits(path, side):
    import numpy as np

    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    x = table[:, :-1] / 16.0
    y = table[:, -1].astype(np.int64)
    # The same split sizes as nnc's `val: 0.2` (which rows differ: the
    # shuffle is each system's own; the timed step does not depend on it).
    order = np.random.default_rng(0).permutation(len(x))
    train = order[: len(x) - int(round(0.2 * len(x)))]
    x, y = x[train], y[train]
    if side:
        x = x.reshape(-1, 1, side, side)
    return x, y


def _text_ids(vocab):
    """nnc's `text` source: the vocab-1 most frequent characters of the
    training 90 %, most frequent first (ties by character), the last id for
    the rest."""
    import numpy as np

    text = open(SHAKESPEARE, encoding="utf-8").read()
    split = int(len(text) * 0.9)
    counts = {}
    for c in text[:split]:
        counts[c] = counts.get(c, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab - 1]
    index = {c: i for i, (c, _) in enumerate(ranked)}
    return np.array([index.get(c, vocab - 1) for c in text[:split]], dtype=np.int64)


def batches(spec, count=8, seed=0):
    """`count` training batches of the workload as NumPy arrays (x, y):
    drawn before timing, cycled through by the timed steps."""
    import numpy as np

    rng = np.random.default_rng(seed)
    b = spec["batch"]
    out = []
    if spec["data"] in ("digits8", "digits28"):
        side = 28 if spec["kind"] == "cnn" else None
        x, y = _digits(DIGITS if spec["data"] == "digits8" else DIGITS28, side)
        for _ in range(count):
            pick = rng.choice(len(x), size=b, replace=False)
            out.append((np.ascontiguousarray(x[pick]), y[pick]))
    else:
        ids = _text_ids(spec["vocab"])
        t = spec["context"]
        for _ in range(count):
            starts = rng.integers(0, len(ids) - t - 1, size=b)
            xs = np.stack([ids[s : s + t] for s in starts])
            ys = np.stack([ids[s + 1 : s + t + 1] for s in starts])
            out.append((xs, ys))
    return out


# --------------------------------------------------------------- timing

def time_steps(run_step, sync, data, warmup, steps):
    """Runs `warmup` untimed steps, then `steps` timed ones; each step's
    time is from handing over its (ready) batch to its results being
    computed (`sync`). Returns the per-step times in seconds and the share
    of the timed steps' thread time spent waiting for a CPU (see
    `cpu_wait_share`)."""
    for i in range(warmup):
        sync(run_step(*data[i % len(data)]))
    times = []
    before = thread_times()
    for i in range(steps):
        x, y = data[(warmup + i) % len(data)]
        start = time.perf_counter()
        sync(run_step(x, y))
        times.append(time.perf_counter() - start)
    return times, cpu_wait_share(before, thread_times(), sum(times))


def thread_times():
    """Per thread of this process: (ns on a CPU, ns ready to run but waiting
    for a CPU), from /proc/self/task/TID/schedstat; None where the kernel
    does not say. As `nnc bench` measures it (src/codegen/bench.rs)."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    times = {}
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                on_cpu, waiting = f.read().split()[:2]
            times[tid] = (int(on_cpu), int(waiting))
        except OSError:
            pass  # the thread ended since the listing
        except ValueError:
            return None
    return times or None


def cpu_wait_share(before, after, seconds):
    """The waits of every thread between two `thread_times`, over `seconds`
    times the threads that ran: the share of the running threads' time
    other processes held their CPU."""
    if before is None or after is None or seconds <= 0:
        return None
    wait, ran = 0, 0
    for tid, (on_cpu, waiting) in after.items():
        on_cpu0, waiting0 = before.get(tid, (0, 0))
        wait += max(0, waiting - waiting0)
        ran += on_cpu > on_cpu0
    # A running thread's counters move at ticks and switches: over a short
    # run none may have moved (no wait).
    return wait / 1e9 / (seconds * max(ran, 1))


def rss_now():
    """This process's resident memory in bytes (VmRSS)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def summary(timed):
    times, wait = timed
    return dict(
        ms_per_step_median=1e3 * statistics.median(times),
        ms_per_step_min=1e3 * min(times),
        steps_timed=len(times),
        cpu_wait_share=wait,
    )


# ----------------------------------------------------------------- host

def host():
    """CPU model, family/model, vector ISA and core count."""
    info = {"model": platform.processor() or "?", "family": "?", "cpu_model": "?"}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "Model name":
                info["model"] = value
            elif key == "CPU family":
                info["family"] = value
            elif key == "Model":
                info["cpu_model"] = value
    except (OSError, subprocess.CalledProcessError):
        pass
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    info["isa"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    info["cpus"] = os.cpu_count()
    try:
        info["load"] = open("/proc/loadavg").read().split()[0]
    except OSError:
        info["load"] = "?"
    return info
