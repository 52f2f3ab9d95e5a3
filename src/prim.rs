//! The primitive ops: the small vocabulary every later stage understands.
//! The checker records programs in these terms, the IR holds them, autodiff
//! has one gradient rule per op, the interpreter one kernel per op.
//!
//! Conventions, shared by every stage:
//! - Element-wise ops take operands of the node's exact shape; broadcasting
//!   is an explicit [`Prim::Broadcast`] node.
//! - Where an op's output shape is not implied by its inputs (`Reshape`,
//!   `Broadcast`, `Const`, `Random`, `Iota`, `Slice`), the node's shape says it.
//! - Integers and booleans are values of the same tensors (0/1 for bools).

use std::fmt;
use std::sync::Arc;

use crate::check::dims::Dim;
use crate::ir::loops::Loop;
pub use crate::syntax::ast::DType;

#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    // ---- leaves
    /// A tensor fed by the runtime each step: a data field (`digits.x`), or
    /// a scalar such as the learning rate (`lr`), the step count (`step`) or
    /// the share of training done (`progress`).
    Input(String),
    /// A learnable parameter, by instance path.
    Param(String),
    /// A tensor carried across steps and not learned (batch-norm statistics,
    /// optimizer moments), by path.
    State(String),
    /// Every element equal to `value`.
    Const(f64),
    /// A size as a float scalar, e.g. the batch size `B` (the number of
    /// elements a mean divides by, when it is only known at run time).
    Count(Dim),
    /// `0, 1, 2, ...` along `axis` of the node's shape.
    Iota {
        axis: usize,
    },
    /// Random numbers, a fresh draw each step; `stream` tells draws apart.
    /// Element `i` is draw `offset + i` of the stream: a data-parallel
    /// process's share of a batch draws what one process draws for those
    /// rows (`offset` 0 but there).
    Random {
        dist: Distribution,
        stream: u32,
        offset: u64,
    },
    /// Argument `i` of a loop body (see [`crate::ir::loops`]).
    Arg(usize),

    // ---- element-wise
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `(condition, a, b)`: `a` where the condition holds, else `b`.
    Select,
    Cast(DType),
    /// The identity, with a zero gradient.
    StopGrad,

    // ---- reductions
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keepdims: bool,
    },
    ArgMax {
        axis: usize,
    },

    // ---- layout
    /// Same elements in row-major order, the node's shape.
    Reshape,
    /// Output axis `i` is input axis `perm[i]`.
    Permute(Vec<usize>),
    /// NumPy broadcast to the node's shape (align right; sizes equal or 1).
    Broadcast,
    /// Elements `start, start + step, ...` along `axis`; the node's shape
    /// gives the count.
    Slice {
        axis: usize,
        start: Dim,
        step: i64,
    },
    Concat {
        axis: usize,
    },
    Pad {
        axis: usize,
        before: Dim,
        after: Dim,
        value: f64,
    },

    // ---- gathers and their adjoints
    /// `(table[V, ...], ids[...]) -> [ids..., ...]`: rows of the table.
    /// Ids outside `0..V` give zeros.
    Take,
    /// `(values[ids..., ...], ids[...]) -> [rows, ...]`: adds each value
    /// into the row its id names (the adjoint of `Take`).
    ScatterRows {
        rows: Dim,
    },
    /// `(x[..., C], ids[...]) -> [...]`: one entry along the last axis.
    Pick,
    /// `(values[...], ids[...]) -> [..., classes]`: each value at its id,
    /// zeros elsewhere (the adjoint of `Pick`).
    Place {
        classes: Dim,
    },

    // ---- linear algebra and images
    /// `[..., m, k] @ [..., k, n]`; batch dimensions are equal (broadcast
    /// explicitly before).
    MatMul,
    /// `[N, C, H, W] -> [N, OH, OW, k·k·C]`: every patch as a row, tap-major
    /// (feature `(ki·k + kj)·C + c`: each tap's channels side by side, as a
    /// channels-last image holds them).
    Unfold2d(Window),
    /// The adjoint of `Unfold2d`: `[N, OH, OW, k·k·C] -> [N, C, H, W]`,
    /// adding overlapping patches.
    Fold2d(Window),

    // ---- data parallelism
    /// The sum of the operand over every process of a data-parallel run
    /// (`crate::collective`), the same in each; the identity in a run of
    /// one process. The step graph sums its gradients with it; `sync_mean`
    /// (batch statistics) traces a share's mean followed by one, which the
    /// training step divides by the number of processes.
    AllReduce,

    // ---- control
    /// `scan`: a body graph run over time steps; operands and the flat
    /// value are described in [`crate::ir::loops`].
    Scan(Arc<Loop>),
}

impl Prim {
    /// Element-wise: each output element from the operands' elements at
    /// the same index (after broadcasting), so the op commutes with
    /// stacking steps or moving a layout around it.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Cast(_) | Prim::StopGrad
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// Output size along one image axis.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// Uniform on [0, 1).
    Uniform,
    /// Standard normal.
    Normal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Tanh,
    /// The logistic function `1 / (1 + exp(-x))`, with `exp` capped at
    /// `exp(80)` so that its gradient `y (1 - y)` stays finite.
    Sigmoid,
    Sin,
    Cos,
    Abs,
    /// Logical not of a bool tensor.
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinaryOp {
    /// Comparisons and logic give bools.
    pub fn is_predicate(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge | And | Or)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Mean,
}

fn truth(t: bool) -> f64 {
    f64::from(u8::from(t))
}

/// `1 / (1 + exp(min(-x, 80)))`: `sigmoid(-80)` is 1.8e-35, so the cap
/// changes nothing visible and keeps `exp` finite in `f32` (uncapped it is
/// infinite below about -88). NaN stays NaN.
fn sigmoid(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    1.0 / (1.0 + (-x).min(80.0).exp())
}

impl UnaryOp {
    /// The op on one value, as every stage computes it (bools are 0/1).
    pub fn apply(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Not => truth(x == 0.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Abs => "abs",
            UnaryOp::Not => "not",
        }
    }
}

impl BinaryOp {
    /// The op on two values. Comparisons and logic give 0/1; `Max` and
    /// `Min` are `f64::max`/`min` (a NaN operand loses to a number); `Pow`
    /// is `powf`.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Eq => truth(a == b),
            BinaryOp::Ne => truth(a != b),
            BinaryOp::Lt => truth(a < b),
            BinaryOp::Le => truth(a <= b),
            BinaryOp::Gt => truth(a > b),
            BinaryOp::Ge => truth(a >= b),
            BinaryOp::And => truth(a != 0.0 && b != 0.0),
            BinaryOp::Or => truth(a != 0.0 || b != 0.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Pow => "pow",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Mean => "mean",
        }
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The op as the IR printer shows it: name, then attributes.
impl fmt::Display for Prim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prim::Input(name) => write!(f, "input {name}"),
            Prim::Param(path) => write!(f, "param {path}"),
            Prim::State(path) => write!(f, "state {path}"),
            // Constants are shown at f32 precision: `0.1`, not `0.09999999999999998`.
            Prim::Const(value) => write!(f, "const {}", *value as f32),
            Prim::Count(dim) => write!(f, "count {dim}"),
            Prim::Iota { axis } => write!(f, "iota axis={axis}"),
            Prim::Random { dist, stream, offset } => {
                let dist = match dist {
                    Distribution::Uniform => "uniform",
                    Distribution::Normal => "normal",
                };
                write!(f, "random {dist} stream={stream}")?;
                if *offset > 0 {
                    write!(f, " offset={offset}")?;
                }
                Ok(())
            }
            Prim::Unary(op) => write!(f, "{}", op.name()),
            Prim::Binary(op) => write!(f, "{}", op.name()),
            Prim::Select => write!(f, "select"),
            Prim::Cast(dtype) => write!(f, "cast {}", dtype.name()),
            Prim::StopGrad => write!(f, "stop_grad"),
            Prim::Reduce { op, axes, keepdims } => {
                write!(f, "reduce_{} axes={}", op.name(), list(axes))?;
                if *keepdims {
                    write!(f, " keepdims")?;
                }
                Ok(())
            }
            Prim::ArgMax { axis } => write!(f, "argmax axis={axis}"),
            Prim::Reshape => write!(f, "reshape"),
            Prim::Permute(perm) => write!(f, "permute {}", list(perm)),
            Prim::Broadcast => write!(f, "broadcast"),
            Prim::Slice { axis, start, step } => {
                write!(f, "slice axis={axis} start={start} step={step}")
            }
            Prim::Concat { axis } => write!(f, "concat axis={axis}"),
            Prim::Pad {
                axis,
                before,
                after,
                value,
            } => {
                write!(f, "pad axis={axis} before={before} after={after} value={value}")
            }
            Prim::Take => write!(f, "take"),
            Prim::ScatterRows { rows } => write!(f, "scatter_rows rows={rows}"),
            Prim::Pick => write!(f, "pick"),
            Prim::Place { classes } => write!(f, "place classes={classes}"),
            Prim::MatMul => write!(f, "matmul"),
            Prim::AllReduce => write!(f, "all_reduce"),
            Prim::Unfold2d(w) => write!(
                f,
                "unfold2d kernel={} stride={} padding={}",
                w.kernel, w.stride, w.padding
            ),
            Prim::Fold2d(w) => write!(
                f,
                "fold2d kernel={} stride={} padding={}",
                w.kernel, w.stride, w.padding
            ),
            Prim::Arg(i) => write!(f, "arg {i}"),
            Prim::Scan(looped) => write!(f, "scan {looped}"),
        }
    }
}
