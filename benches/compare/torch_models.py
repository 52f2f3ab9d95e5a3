"""PyTorch side of benches/compare: the six workloads as PyTorch modules with
nnc's initialization schemes, one eager training step (forward, backward,
clipping, optimizer update), timed; or the fp32 matmul peak.

    python torch_models.py WORKLOAD [--steps N] [--warmup N] [--threads 2]
                           [--optim foreach|fused|for-loop] [--compile]
    python torch_models.py --peak [--threads 2] [--size 1024]

Prints one JSON object. Run by run.py, one process per measurement."""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def build(spec, torch):
    nn = torch.nn
    F = torch.nn.functional

    def linear(i, o, bias=True):
        layer = nn.Linear(i, o, bias=bias)
        nn.init.xavier_uniform_(layer.weight)  # nnc's `xavier`: U(±sqrt(6/(in+out)))
        if bias:
            nn.init.zeros_(layer.bias)
        return layer

    def conv(c, o):
        layer = nn.Conv2d(c, o, 3, padding=1)
        nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")  # N(0, 2/(c·3·3))
        nn.init.zeros_(layer.bias)
        return layer

    kind = spec["kind"]
    if kind == "mlp":
        sizes = spec["sizes"]
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    if kind == "cnn":
        return nn.Sequential(
            conv(1, 16), nn.ReLU(), nn.MaxPool2d(2),
            conv(16, 32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), linear(32 * 7 * 7, 10),
        )
    if kind == "lstm":
        v, e, h = spec["vocab"], spec["embed"], spec["hidden"]

        class CharLM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(v, e)
                nn.init.normal_(self.embed.weight, std=0.02)
                self.lstm = nn.LSTM(e, h, batch_first=True)
                # Gates i, f, g, o as in nnc's lstm_cell; Xavier on [in, 4h]
                # and [h, 4h]; one bias (nnc's), so the second is zero and frozen.
                nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
                nn.init.xavier_uniform_(self.lstm.weight_hh_l0)
                nn.init.zeros_(self.lstm.bias_ih_l0)
                nn.init.zeros_(self.lstm.bias_hh_l0)
                self.lstm.bias_hh_l0.requires_grad_(False)
                self.out = linear(h, v)

            def forward(self, ids):
                return self.out(self.lstm(self.embed(ids))[0])

        return CharLM()
    if kind == "gpt":
        v, d, heads, layers, t = spec["vocab"], spec["d"], spec["heads"], spec["layers"], spec["context"]

        class Layer(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.q, self.k, self.v, self.o = (linear(d, d) for _ in range(4))
                self.up, self.down = linear(d, 4 * d), linear(4 * d, d)

            def forward(self, x):
                n = x.shape[0]
                a = self.ln1(x)
                split = lambda z: z.view(n, t, heads, d // heads).transpose(1, 2)
                y = F.scaled_dot_product_attention(split(self.q(a)), split(self.k(a)), split(self.v(a)), is_causal=True)
                x = x + self.o(y.transpose(1, 2).reshape(n, t, d))
                return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(v, d)
                nn.init.normal_(self.embed.weight, std=0.02)
                self.positions = nn.Parameter(torch.randn(t, d) * 0.02)
                self.layers = nn.ModuleList(Layer() for _ in range(layers))
                self.ln = nn.LayerNorm(d)
                self.out = linear(d, v)

            def forward(self, ids):
                x = self.embed(ids) + self.positions
                for layer in self.layers:
                    x = layer(x)
                return self.out(self.ln(x))

        return GPT()
    raise ValueError(kind)


def measure(args):
    import torch

    import_rss = common.rss_now()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = common.WORKLOADS[args.workload]
    model = build(spec, torch)
    params = [p for p in model.parameters() if p.requires_grad]
    o = spec["optimizer"]
    kwargs = dict(lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], weight_decay=o["weight_decay"])
    if args.optim == "foreach":
        kwargs["foreach"] = True
    elif args.optim == "fused":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = False
    opt = (torch.optim.AdamW if o["name"] == "adamw" else torch.optim.Adam)(params, **kwargs)
    clip = o["clip_norm"]
    F = torch.nn.functional
    forward = torch.compile(model) if args.compile else model

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        logits = forward(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip, foreach=args.optim != "for-loop")
        opt.step()
        return loss

    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in common.batches(spec)]
    compile_ms = None
    if args.compile:
        start = time.perf_counter()
        step(*data[0]).item()
        compile_ms = 1e3 * (time.perf_counter() - start)
    # Eager PyTorch computes synchronously on the CPU: the step has finished
    # when it returns; `.item()` is not needed and not timed.
    times = common.time_steps(step, lambda loss: loss, data, args.warmup, args.steps)
    loss = float(step(*data[0]).item())
    return dict(
        common.summary(times),
        steps_run=args.warmup + args.steps + 1 + (1 if args.compile else 0),
        system="torch.compile" if args.compile else "torch",
        workload=args.workload,
        params=sum(p.numel() for p in params),
        import_rss_bytes=import_rss,
        compile_ms=compile_ms,
        loss=loss,
        threads=torch.get_num_threads(),
        version=torch.__version__,
        optim=args.optim,
    )


def peak(args):
    """Median GFLOP/s of an fp32 size³ product (torch.mm) on the threads."""
    import torch

    torch.set_num_threads(args.threads)
    n = args.size
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    for _ in range(3):
        torch.mm(a, b, out=c)
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        calls = 0
        while time.perf_counter() - start < 0.1:
            torch.mm(a, b, out=c)
            calls += 1
        rounds.append((time.perf_counter() - start) / calls)
    rounds.sort()
    return dict(system="torch", size=n, threads=torch.get_num_threads(), gflops=2 * n**3 / rounds[3] / 1e9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", choices=sorted(common.WORKLOADS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--optim", choices=["foreach", "fused", "for-loop"], default="fused")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--peak", action="store_true", help="measure the fp32 matmul rate instead")
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    common.pin_threads(args.threads)
    if args.compile:
        # Inductor compiles in this process: no pool of worker processes
        # left running beside the timed steps.
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    os.environ.update({k: v for k, v in common.thread_env(args.threads).items() if k not in os.environ})
    if not args.peak and not args.workload:
        parser.error("a workload or --peak")
    print(json.dumps(peak(args) if args.peak else measure(args)))


if __name__ == "__main__":
    main()
