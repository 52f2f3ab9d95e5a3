"""JAX side of benches/compare: the six workloads as pure functions of a
parameter tree initialized with nnc's schemes, and one `jax.jit`-compiled
training step (forward, backward, clipping, Adam/AdamW written out as nnc
computes them), timed.

    python jax_models.py WORKLOAD [--steps N] [--warmup N] [--threads 2]

Prints one JSON object. Run by run.py, one process per measurement."""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def init(spec, rng):
    """The parameter tree (NumPy f32) with nnc's initializers: `xavier`
    U(±sqrt(6/(in+out))) for linear weights stored [in, out], `kaiming`
    N(0, 2/fan_in) for filters, N(0, 0.02²) for embeddings and positions,
    zeros for biases, ones/zeros for layer-norm gain/shift."""
    import numpy as np

    f32 = np.float32

    def xavier(i, o):
        a = (6.0 / (i + o)) ** 0.5
        return rng.uniform(-a, a, size=(i, o)).astype(f32)

    def linear(i, o):
        return dict(w=xavier(i, o), b=np.zeros(o, f32))

    def normal(*shape, std):
        return (std * rng.standard_normal(shape)).astype(f32)

    kind = spec["kind"]
    if kind == "mlp":
        sizes = spec["sizes"]
        return [linear(a, b) for a, b in zip(sizes, sizes[1:])]
    if kind == "cnn":
        # Filters in XLA's CPU layout HWIO (fan-in 3·3·C either way).
        conv = lambda c, o: dict(w=normal(3, 3, c, o, std=(2.0 / (9 * c)) ** 0.5), b=np.zeros(o, f32))
        return dict(conv1=conv(1, 16), conv2=conv(16, 32), fc=linear(32 * 7 * 7, 10))
    if kind == "lstm":
        v, e, h = spec["vocab"], spec["embed"], spec["hidden"]
        return dict(
            embed=normal(v, e, std=0.02),
            wx=xavier(e, 4 * h), b=np.zeros(4 * h, f32), wh=xavier(h, 4 * h),
            out=linear(h, v),
        )
    if kind == "gpt":
        v, d, t = spec["vocab"], spec["d"], spec["context"]
        ln = lambda: dict(g=np.ones(d, f32), b=np.zeros(d, f32))
        layer = lambda: dict(
            ln1=ln(), q=linear(d, d), k=linear(d, d), v=linear(d, d), o=linear(d, d),
            ln2=ln(), up=linear(d, 4 * d), down=linear(4 * d, d),
        )
        return dict(
            embed=normal(v, d, std=0.02), positions=normal(t, d, std=0.02),
            layers=[layer() for _ in range(spec["layers"])], ln=ln(), out=linear(d, v),
        )
    raise ValueError(kind)


def forward(spec, jnp, jax):
    lax = jax.lax

    def dense(p, x):
        return x @ p["w"] + p["b"]

    kind = spec["kind"]
    if kind == "mlp":
        def f(params, x):
            for p in params[:-1]:
                x = jax.nn.relu(dense(p, x))
            return dense(params[-1], x)
        return f
    if kind == "cnn":
        def conv(p, x):
            y = lax.conv_general_dilated(x, p["w"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return y + p["b"]

        def pool(x):
            return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

        def f(params, x):
            x = jnp.transpose(x, (0, 2, 3, 1))  # the batch arrives NCHW, as in nnc and PyTorch
            x = pool(jax.nn.relu(conv(params["conv1"], x)))
            x = pool(jax.nn.relu(conv(params["conv2"], x)))
            return dense(params["fc"], x.reshape(x.shape[0], -1))
        return f
    if kind == "lstm":
        h = spec["hidden"]

        def f(params, ids):
            x = jnp.take(params["embed"], ids, axis=0)  # [B, T, E]
            # The input projection of every step at once (as PyTorch's LSTM
            # does); the recurrence in a scan over time.
            xw = jnp.swapaxes(x @ params["wx"] + params["b"], 0, 1)  # [T, B, 4H]

            def cell(carry, z_x):
                hs, cs = carry
                z = z_x + hs @ params["wh"]
                i, fg, g, o = (z[:, k * h:(k + 1) * h] for k in range(4))
                c = jax.nn.sigmoid(fg) * cs + jax.nn.sigmoid(i) * jnp.tanh(g)
                hn = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (hn, c), hn

            zeros = jnp.zeros((ids.shape[0], h), jnp.float32)
            _, hs = lax.scan(cell, (zeros, zeros), xw)
            return dense(params["out"], jnp.swapaxes(hs, 0, 1))
        return f
    if kind == "gpt":
        d, heads, t = spec["d"], spec["heads"], spec["context"]
        k_dim = d // heads
        mask = jnp.tril(jnp.ones((t, t), bool))

        def layer_norm(p, x):
            mu = jnp.mean(x, -1, keepdims=True)
            var = jnp.mean(jnp.square(x - mu), -1, keepdims=True)
            return p["g"] * (x - mu) / jnp.sqrt(var + 1e-5) + p["b"]

        def attention(p, x):
            n = x.shape[0]
            split = lambda z: z.reshape(n, t, heads, k_dim).transpose(0, 2, 1, 3)
            q, k, v = split(dense(p["q"], x)), split(dense(p["k"], x)), split(dense(p["v"], x))
            scores = q @ jnp.swapaxes(k, 2, 3) / jnp.sqrt(jnp.float32(k_dim))
            w = jax.nn.softmax(jnp.where(mask, scores, -1e9), axis=-1)
            return dense(p["o"], (w @ v).transpose(0, 2, 1, 3).reshape(n, t, d))

        def f(params, ids):
            x = jnp.take(params["embed"], ids, axis=0) + params["positions"]
            for p in params["layers"]:
                x = x + attention(p, layer_norm(p["ln1"], x))
                x = x + dense(p["down"], jax.nn.gelu(dense(p["up"], layer_norm(p["ln2"], x)), approximate=True))
            return dense(params["out"], layer_norm(params["ln"], x))
        return f
    raise ValueError(kind)


def make_step(spec, jnp, jax):
    """(params, m, v, t, x, y) -> (params, m, v, t, loss): nnc's update,
    p -= lr (m̂ / (sqrt(v̂) + eps) + wd p) with wd only for AdamW, after
    scaling the gradients by min(1, clip / (‖g‖ + 1e-6))."""
    f = forward(spec, jnp, jax)
    o = spec["optimizer"]
    tmap = jax.tree_util.tree_map
    lr, b1, b2, eps = o["lr"], o["beta1"], o["beta2"], o["eps"]
    wd = o["weight_decay"] if o["name"] == "adamw" else 0.0

    def loss_fn(params, x, y):
        logits = f(params, x)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))

    def step(params, m, v, t, x, y):
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        if o["clip_norm"] is not None:
            norm = jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(g)))
            scale = jnp.minimum(o["clip_norm"] / (norm + 1e-6), 1.0)
            g = tmap(lambda a: a * scale, g)
        t = t + 1.0
        m = tmap(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = tmap(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        c1, c2 = 1 - b1**t, 1 - b2**t

        def update(p, mi, vi):
            direction = (mi / c1) / (jnp.sqrt(vi / c2) + eps)
            if wd:
                direction = direction + wd * p
            return p - lr * direction

        return tmap(update, params, m, v), m, v, t, loss

    return step


def measure(args):
    import numpy as np
    import jax
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # the CPU client is up: the baseline
    import_rss = common.rss_now()
    spec = common.WORKLOADS[args.workload]
    params = jax.tree_util.tree_map(jnp.asarray, init(spec, np.random.default_rng(0)))
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    t = jnp.float32(0.0)
    data = [(jnp.asarray(x.astype(np.int32) if x.dtype == np.int64 else x), jnp.asarray(y.astype(np.int32))) for x, y in common.batches(spec)]
    # Parameters and optimizer slots are donated: updated in place, as nnc does.
    jitted = jax.jit(make_step(spec, jnp, jax), donate_argnums=(0, 1, 2))
    start = time.perf_counter()
    lowered = jitted.lower(params, m, v, t, *data[0])
    trace_ms = 1e3 * (time.perf_counter() - start)
    compiled = lowered.compile()
    compile_ms = 1e3 * (time.perf_counter() - start)
    state = [params, m, v, t]

    def run_step(x, y):
        state[0], state[1], state[2], state[3], loss = compiled(*state, x, y)
        return state, loss

    times = common.time_steps(run_step, jax.block_until_ready, data, args.warmup, args.steps)
    _, loss = run_step(*data[0])
    return dict(
        common.summary(times),
        steps_run=args.warmup + args.steps + 1,
        system="jax",
        workload=args.workload,
        params=sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(state[0])),
        import_rss_bytes=import_rss,
        compile_ms=compile_ms,
        trace_ms=trace_ms,
        loss=float(loss),
        version=jax.__version__,
        devices=len(jax.devices()),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(common.WORKLOADS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    common.pin_threads(args.threads)
    os.environ.update({k: v for k, v in common.thread_env(args.threads).items() if k not in os.environ})
    print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()
