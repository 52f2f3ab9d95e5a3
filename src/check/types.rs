//! The values the checker computes for expressions: tensors with a dtype and
//! a symbolic shape, and the compile-time values around them.

use std::fmt;

use super::dims::{format_shape, Dim};
use crate::diagnostics::Span;
use crate::syntax::ast::DType;

/// The static type of a tensor: element type and (symbolic) shape.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> TensorType {
        TensorType { dtype, shape }
    }

    pub fn scalar(dtype: DType) -> TensorType {
        TensorType {
            dtype,
            shape: Vec::new(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements, when every dimension is known and the product
    /// fits in an `i64`.
    pub fn num_elements(&self) -> Option<i64> {
        self.shape
            .iter()
            .try_fold(1i64, |acc, d| d.as_const().and_then(|n| acc.checked_mul(n)))
    }

    /// Whether the tensor would have more than [`MAX_ELEMENTS`] elements
    /// whatever its symbolic sizes are (each at least 1), counting a
    /// product that overflows as too large.
    pub fn is_too_large(&self) -> bool {
        self.shape
            .iter()
            .try_fold(1i64, |acc, d| acc.checked_mul(d.least()))
            .is_none_or(|count| count > MAX_ELEMENTS)
    }
}

/// The most elements a tensor (or the parameters and states together) may
/// have: the host keeps values as `f64`, and the bytes of an array must be
/// addressable (`isize::MAX`), as the interpreter also requires.
pub const MAX_ELEMENTS: i64 = i64::MAX / std::mem::size_of::<f64>() as i64;

impl TensorType {
    /// The elements of tensors of these types together (symbolic shapes,
    /// after an error, not counted): `None` if the total would exceed
    /// [`MAX_ELEMENTS`].
    pub fn total_elements<'a>(types: impl IntoIterator<Item = &'a TensorType>) -> Option<i64> {
        types
            .into_iter()
            .try_fold(0i64, |acc, ty| {
                let count = if ty.is_too_large() {
                    None
                } else {
                    Some(ty.num_elements().unwrap_or(0))
                };
                acc.checked_add(count?)
            })
            .filter(|&total| total <= MAX_ELEMENTS)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype.name(), format_shape(&self.shape))
    }
}

impl fmt::Debug for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A tensor value: its type and where that type was declared or computed,
/// so that a mismatch can say where each side's shape came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub ty: TensorType,
    pub origin: Span,
    /// The node computing it in the checker's trace, when it has one (values
    /// after an error have none).
    pub node: Option<usize>,
}

/// Something callable: a block of the program or standard library, or a
/// primitive op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callable {
    Block(String),
    Builtin(&'static str),
}

impl Callable {
    pub fn name(&self) -> &str {
        match self {
            Callable::Block(name) => name,
            Callable::Builtin(name) => name,
        }
    }
}

/// The split of a dataset named by `data.train` or `data.val`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKind {
    Train,
    Val,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Tensor(Tensor),
    /// A compile-time integer, possibly symbolic (`B`, `4 * D`).
    Int(Dim),
    Float(f64),
    Bool(bool),
    Str(String),
    List(Vec<Value>),
    Range(Box<Value>, Box<Value>),
    Fn(Callable),
    /// A dataset declared with `data`, by index.
    Data(usize),
    Split(usize, SplitKind),
    /// An initializer such as `xavier` or `normal(std: 0.02)`.
    Init(Initializer),
    /// A value whose error was already reported.
    Error,
}

impl Value {
    pub fn kind_name(&self) -> String {
        match self {
            Value::Tensor(t) => format!("a tensor {}", t.ty),
            Value::Int(_) => "an integer".to_string(),
            Value::Float(_) => "a number".to_string(),
            Value::Bool(_) => "a boolean".to_string(),
            Value::Str(_) => "a string".to_string(),
            Value::List(_) => "a list".to_string(),
            Value::Range(..) => "a range".to_string(),
            Value::Fn(c) => format!("the function `{}`", c.name()),
            Value::Data(_) => "a dataset".to_string(),
            Value::Split(..) => "a dataset split".to_string(),
            Value::Init(_) => "an initializer".to_string(),
            Value::Error => "an erroneous value".to_string(),
        }
    }

    pub fn as_const_int(&self) -> Option<i64> {
        match self {
            Value::Int(d) => d.as_const(),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Int(d) => d.as_const().map(|n| n as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }
}

/// How a parameter or state tensor is filled before training.
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    Zeros,
    Ones,
    Constant(f64),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    /// Glorot: uniform with variance 2 / (fan_in + fan_out), times `gain`.
    Xavier {
        gain: f64,
    },
    /// He: normal with variance 2 / fan_in, times `gain`.
    Kaiming {
        gain: f64,
    },
}

impl fmt::Display for Initializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Initializer::Zeros => write!(f, "zeros"),
            Initializer::Ones => write!(f, "ones"),
            Initializer::Constant(v) => write!(f, "constant({v})"),
            Initializer::Normal { mean, std } => write!(f, "normal(mean: {mean}, std: {std})"),
            Initializer::Uniform { low, high } => write!(f, "uniform({low}, {high})"),
            Initializer::Xavier { gain } => write!(f, "xavier(gain: {gain})"),
            Initializer::Kaiming { gain } => write!(f, "kaiming(gain: {gain})"),
        }
    }
}
