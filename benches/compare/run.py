#!/usr/bin/env python3
"""benches/compare: nnc against PyTorch eager and JAX jit on six training
workloads, in one sitting, one table.

    python3 benches/compare/run.py [--workloads mlp,cnn] [--repeats 3]
        [--systems nnc,torch,jax] [--steps-scale 1] [--threads 2]
        [--torch-compile] [--no-gemm] [--verbose] [--json FILE]

Every measurement runs in a process of its own (its peak RSS is that
process's ru_maxrss), pinned to the same `--threads` CPUs; the systems take
turns within each workload and the order rotates from one repeat to the
next. The matmul peak (PyTorch's fp32 1024³ product on 1 and on 2 threads,
and nnc's own GEMM through `cargo bench --bench gemm`) is measured in the
same sitting. Needs `cargo build --release` (for target/release/nnc) and
`bash benches/compare/setup.sh` (for the peers). See README.md."""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE, ROOT = common.HERE, common.ROOT
SYSTEMS = ("nnc", "torch", "jax")
NAMES = {"nnc": "nnc", "torch": "PyTorch eager", "jax": "JAX jit", "torch.compile": "torch.compile"}


def run_child(cmd, threads, cwd=ROOT):
    """Runs `cmd` on the first `threads` CPUs with the thread variables set;
    returns (stdout, stderr, exit code, peak RSS in bytes, seconds)."""
    env = dict(os.environ, **common.thread_env(threads))
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err,
                                 preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return (out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                child.returncode, usage.ru_maxrss * 1024, seconds)


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None


class Harness:
    def __init__(self, args):
        self.args = args
        self.nnc = args.nnc or os.path.join(ROOT, "target", "release", "nnc")
        self.python = args.python or os.path.join(HERE, ".venv", "bin", "python")

    def steps(self, spec):
        return max(3, int(round(spec["steps"] * self.args.steps_scale)))

    def command(self, system, name):
        spec = common.WORKLOADS[name]
        steps = self.steps(spec)
        if system == "nnc":
            n = spec["nnc"]
            cmd = [self.nnc, "bench", os.path.join(HERE, n["file"]), "--backend", "jit", "--json",
                   "--steps", str(steps), "--warmup", str(spec["warmup"]), "--repeats", "1"]
            for key, value in n["set"].items():
                cmd += ["--set", f"{key}={value}"]
            if n["batch"]:
                cmd += ["--batch", str(n["batch"])]
            return cmd
        script = "torch_models.py" if system.startswith("torch") else "jax_models.py"
        cmd = [self.python, os.path.join(HERE, script), name, "--steps", str(steps),
               "--warmup", str(spec["warmup"]), "--threads", str(self.args.threads)]
        if system == "torch":
            cmd += ["--optim", self.args.torch_optim]
        if system == "torch.compile":
            cmd += ["--optim", self.args.torch_optim, "--compile"]
        return cmd

    def measure(self, system, name):
        cmd = self.command(system, name)
        out, err, code, rss, seconds = run_child(cmd, self.args.threads)
        result = last_json(out) if code == 0 else None
        if result is None:
            tail = "\n".join(err.strip().splitlines()[-5:])
            print(f"  {name} / {system}: failed (exit {code}): {tail}", file=sys.stderr)
            return None
        result["rss_bytes"] = rss
        result["wall_s"] = seconds
        if system == "nnc":
            result["params"] = self.nnc_params(name)
        if self.args.verbose:
            print(f"  {name} / {system}: {result['ms_per_step_median']:.3f} ms/step, "
                  f"{rss / 2**20:.0f} MiB, {seconds:.1f} s", file=sys.stderr)
        return result

    _params = {}

    def nnc_params(self, name):
        """nnc's parameter count (`nnc check`), the file's constants replaced
        by the workload's `--set` values in a temporary copy beside it."""
        if name in self._params:
            return self._params[name]
        n = common.WORKLOADS[name]["nnc"]
        path = os.path.join(HERE, n["file"])
        text = open(path).read()
        for key, value in n["set"].items():
            text, count = re.subn(rf"(?m)^const {key} = \S+", f"const {key} = {value}", text)
            assert count == 1, f"{n['file']} has no `const {key}`"
        fd, copy = tempfile.mkstemp(suffix=".nn", prefix=".params-", dir=HERE)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            out = subprocess.run([self.nnc, "check", copy], capture_output=True, text=True).stdout
        finally:
            os.unlink(copy)
        found = re.search(r"([\d,]+) parameters?", out)
        self._params[name] = int(found.group(1).replace(",", "")) if found else None
        return self._params[name]

    def peaks(self):
        """GFLOP/s of an fp32 1024³ product: PyTorch on 1 and `threads`
        threads, nnc's GEMM (one thread, and split over the team)."""
        peaks = {}
        threads = sorted({1, self.args.threads})
        if "torch" in self.args.systems:
            for t in threads:
                out, err, code, _, _ = run_child(
                    [self.python, os.path.join(HERE, "torch_models.py"), "--peak", "--threads", str(t)], t)
                result = last_json(out) if code == 0 else None
                if result:
                    peaks[f"PyTorch {t} thread{'s' if t > 1 else ''}"] = result["gflops"]
        if "nnc" in self.args.systems and not self.args.no_gemm:
            cargo = shutil.which("cargo")
            if cargo:
                out, err, code, _, _ = run_child(
                    [cargo, "bench", "--quiet", "--bench", "gemm", "--", "square 1024"], self.args.threads)
                row = [line for line in out.splitlines() if "square 1024" in line]
                if row:
                    cells = [c.strip() for c in row[0].strip("|").split("|")]
                    peaks["nnc gemm 1 thread"] = float(cells[2])
                    peaks[f"nnc gemm {self.args.threads} threads"] = float(cells[3])
                else:
                    print("  nnc's gemm bench failed: " + err.strip()[-300:], file=sys.stderr)
        return peaks

    def round_trip(self):
        """Nanoseconds a cache line takes between the two cores and back
        (`cargo bench --bench cores`): on the 2-vCPU VMs the hypervisor moves
        the vCPUs, and steps that hand data between the threads run at two
        speeds accordingly (BENCHMARKS.md, "Which core reads a weight")."""
        cargo = shutil.which("cargo")
        if not cargo or self.args.threads < 2:
            return None
        out, _, code, _, _ = run_child([cargo, "bench", "--quiet", "--bench", "cores"], 2)
        found = re.search(r"(\d+) ns a round trip", out) if code == 0 else None
        return int(found.group(1)) if found else None


def fmt(value, digits=None):
    if value is None:
        return "—"
    if digits is None:
        digits = 3 if value < 1 else 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--workloads", default=",".join(common.WORKLOADS))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every workload's timed steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-compile", action="store_true", help="also measure torch.compile (slow to compile)")
    parser.add_argument("--torch-optim", choices=["foreach", "fused", "for-loop"], default="fused")
    parser.add_argument("--no-gemm", action="store_true", help="skip nnc's GEMM peak (cargo bench)")
    parser.add_argument("--nnc", help="the nnc binary (default target/release/nnc)")
    parser.add_argument("--python", help="the peers' Python (default benches/compare/.venv/bin/python)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in common.WORKLOADS]
    args.systems = [s for s in args.systems.split(",") if s]
    if unknown or any(s not in SYSTEMS for s in args.systems):
        parser.error(f"workloads: {', '.join(common.WORKLOADS)}; systems: {', '.join(SYSTEMS)}")
    systems = list(args.systems) + (["torch.compile"] if args.torch_compile else [])
    h = Harness(args)
    if "nnc" in systems and not os.access(h.nnc, os.X_OK):
        sys.exit(f"no nnc binary at {h.nnc}: run `cargo build --release` first")
    if any(s != "nnc" for s in systems) and not os.access(h.python, os.X_OK):
        sys.exit(f"no Python at {h.python}: run `bash benches/compare/setup.sh` first")
    subprocess.run([sys.executable, os.path.join(HERE, "make_data.py")], check=True)

    info = common.host()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host_line = (f"host: {info['model']} (family {info['family']}, model {info['cpu_model']}), "
                 f"{', '.join(info['isa']) or 'no AVX2'}, {info['cpus']} CPUs; {args.threads} threads; {now}; "
                 f"load average {info['load']}")
    print(host_line, flush=True)
    trips = [h.round_trip()]

    results = {(w, s): [] for w in workloads for s in systems}
    peaks = h.peaks()
    print("matmul peak, fp32 1024³, GFLOP/s, before the runs: " + (", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) or "not measured"),
          flush=True)
    for r in range(args.repeats):
        for w in workloads:
            order = systems[r % len(systems):] + systems[: r % len(systems)]
            for s in order:
                result = h.measure(s, w)
                if result:
                    results[(w, s)].append(result)
        print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    # The peak again after the runs (the machine may be busier or quieter
    # by then): the better of the two measurements counts.
    for key, value in h.peaks().items():
        peaks[key] = max(value, peaks.get(key, 0.0))
    print("matmul peak, best of before and after: " + (", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) or "not measured"))
    best_peak = max(peaks.values()) if peaks else None
    load = common.host()["load"]
    print(f"load average at the end: {load}")
    trips.append(h.round_trip())
    if any(trips):
        print("cache line between the cores and back (cargo bench --bench cores): "
              + " ns before, ".join(fmt(t, 0) if t else "—" for t in trips) + " ns after")
    try:
        if max(float(info["load"]), float(load)) > (info["cpus"] or 1):
            print(f"warning: load average above {info['cpus']} CPUs: other processes ran beside the "
                  "measurements, so the figures measure that contention too", flush=True)
    except ValueError:
        pass

    def med(w, s, key):
        values = [x[key] for x in results[(w, s)] if x.get(key) is not None]
        return statistics.median(values) if values else None

    def top(w, s, key):
        values = [x[key] for x in results[(w, s)] if x.get(key) is not None]
        return max(values) if values else None

    def rss_cell(w, s):
        peak, base = top(w, s, "rss_bytes"), med(w, s, "import_rss_bytes")
        if peak is None:
            return "—"
        return f"{peak / 2**20:.0f}" + (f" (+{(peak - base) / 2**20:.0f})" if base else "")

    peers = [s for s in systems if s != "nnc"]
    head = ["workload", "params"] + [f"{NAMES[s]} ms/step" for s in systems]
    if "nnc" in systems and peers:
        head.append("best peer / nnc")
    if "nnc" in systems:
        head += ["nnc GFLOP/s", "share of peak"]
    compiled = [s for s in systems if s in ("nnc", "jax", "torch.compile")]
    head += [f"compile s ({' / '.join(NAMES[s] for s in compiled)})",
             f"peak RSS MiB ({' / '.join(NAMES[s] for s in systems)})"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for w in workloads:
        counts = {s: med(w, s, "params") for s in systems}
        known = {v for v in counts.values() if v is not None}
        params = (f"{known.pop():,}" if len(known) == 1
                  else " / ".join(f"{NAMES[s]} {fmt(v, 0)}" for s, v in counts.items()) + " (differ)")
        row = [common.WORKLOADS[w]["label"], params]
        ms = {s: med(w, s, "ms_per_step_median") for s in systems}
        row += [fmt(ms[s]) for s in systems]
        if "nnc" in systems and peers:
            peer = [ms[s] for s in peers if ms[s] is not None]
            row.append(fmt(min(peer) / ms["nnc"], 2) if peer and ms["nnc"] else "—")
        if "nnc" in systems:
            flops = med(w, "nnc", "flop_per_step")
            rate = flops / ms["nnc"] / 1e6 if flops and ms["nnc"] else None
            row += [fmt(rate, 1), f"{100 * rate / best_peak:.0f} %" if rate and best_peak else "—"]
        row.append(" / ".join(fmt(med(w, s, "compile_ms") / 1e3 if med(w, s, "compile_ms") else None, 2)
                              for s in compiled))
        row.append(" / ".join(rss_cell(w, s) for s in systems))
        lines.append("| " + " | ".join(row) + " |")
    print()
    print("\n".join(lines))
    print()
    print(f"Median over {args.repeats} repeat(s) of each run's median ms/step (runs of "
          + ", ".join(f"{w} {h.steps(common.WORKLOADS[w])}" for w in workloads)
          + " timed steps). GFLOP/s: nnc's count of the step (2mnk per product, 1 per element-wise op"
          " and reduced element) over its time; share of peak: of the best 1024³ rate of the sitting."
          + " Peak RSS: the process's, the largest over the repeats; (+N): above the"
          " process's resident memory once the framework was imported.")
    waits = []
    for w in workloads:
        cells = []
        for s in systems:
            share = med(w, s, "cpu_wait_share")
            cells.append(f"{NAMES[s]} {100 * share:.0f} %" if share is not None else f"{NAMES[s]} —")
        waits.append(f"{w} " + " / ".join(cells))
    print("Threads kept waiting for a CPU by other processes (share of the timed steps' running threads' "
          "time, from /proc/self/task/*/schedstat; median over repeats): " + "; ".join(waits) + ".")
    if args.verbose:
        for w in workloads:
            for s in systems:
                runs = results[(w, s)]
                if runs:
                    spread = ", ".join(fmt(x["ms_per_step_median"]) for x in runs)
                    extra = f"; loss after {runs[0]['steps_run']} steps {runs[0]['loss']:.3f}" if "loss" in runs[0] else ""
                    print(f"  {w} / {NAMES[s]}: per repeat {spread} ms/step; params {runs[0].get('params')}{extra}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(host=host_line, peaks=peaks,
                           results={f"{w}/{s}": v for (w, s), v in results.items()}), f, indent=1)


if __name__ == "__main__":
    main()
