//! The abstract syntax tree: what a `.nn` file says, with a byte span on every node.

use crate::diagnostics::Span;

/// One parsed file: its items in source order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    /// Items that did not parse: their keyword and, if readable, their name,
    /// so later stages stay quiet about what the syntax error already explains.
    pub broken: Vec<BrokenItem>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BrokenItem {
    pub keyword: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Const(ConstDecl),
    Dim(DimDecl),
    Data(DataDecl),
    Block(BlockDecl),
    Loss(LossDecl),
    Optimizer(OptimizerDecl),
    Section(Section),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Const(d) => d.span,
            Item::Dim(d) => d.span,
            Item::Data(d) => d.span,
            Item::Block(d) => d.span,
            Item::Loss(d) => d.span,
            Item::Optimizer(d) => d.span,
            Item::Section(d) => d.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `const D = 128`
#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `dim B, T`: symbolic dimensions bound when the program runs.
#[derive(Clone, Debug, PartialEq)]
pub struct DimDecl {
    pub names: Vec<Ident>,
    pub span: Span,
}

/// `data digits = csv("digits.csv", ...)`
#[derive(Clone, Debug, PartialEq)]
pub struct DataDecl {
    pub name: Ident,
    pub source: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A reusable layer: every call creates its own parameters.
    Block,
    /// The model: one instance, whose parameters are trained.
    Model,
}

/// `block name(inputs and hyper-parameters) -> type { body }`
#[derive(Clone, Debug, PartialEq)]
pub struct BlockDecl {
    pub kind: BlockKind,
    pub name: Ident,
    pub params: Vec<ParamDecl>,
    pub ret: Option<TensorType>,
    pub body: Body,
    pub span: Span,
}

/// One entry of a signature: a tensor input or a hyper-parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeExpr {
    Tensor(TensorType),
    Hyper(HyperType, Span),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HyperType {
    Int,
    Float,
    Bool,
    Str,
    Fn,
}

impl HyperType {
    pub fn name(self) -> &'static str {
        match self {
            HyperType::Int => "int",
            HyperType::Float => "float",
            HyperType::Bool => "bool",
            HyperType::Str => "str",
            HyperType::Fn => "fn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    I32,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// `f32[B, T, 4 * D]`, `i32[...]`
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    pub dtype: DType,
    pub dims: Vec<DimExpr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DimExpr {
    /// `...`: any number of leading dimensions, the same in every input.
    Ellipsis(Span),
    Expr(Expr),
}

/// `{ statements; result }`
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    pub stmts: Vec<Stmt>,
    pub result: Box<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `param w: f32[I, O] = xavier`: a learnable parameter.
    Param {
        name: Ident,
        ty: TensorType,
        init: Option<Expr>,
        span: Span,
    },
    /// `state mean: f32[C] = zeros`: a tensor kept across steps, not learned.
    State {
        name: Ident,
        ty: TensorType,
        init: Option<Expr>,
        span: Span,
    },
    /// `update mean = 0.9 * mean + 0.1 * m`: new state value after a training step.
    Update { name: Ident, value: Expr, span: Span },
    /// `x = expr`
    Let { name: Ident, value: Expr, span: Span },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Range,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Range => "..",
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::MatMul => "@",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// `training`: true in a training step, false in evaluation.
    Training,
    Name(String),
    List(Vec<Expr>),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Index {
        base: Box<Expr>,
        items: Vec<IndexItem>,
    },
    Field {
        base: Box<Expr>,
        name: Ident,
    },
    If {
        cond: Box<Expr>,
        then_body: Body,
        else_body: Body,
    },
    /// `repeat N layer(x, ...)`: N copies of `layer`, each with its own
    /// parameters, the output of one feeding the first input of the next.
    Repeat {
        count: Box<Expr>,
        block: Ident,
        args: Vec<Arg>,
    },
}

/// A call argument, positional or `name: value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    Ellipsis(Span),
    Slice {
        start: Option<Box<Expr>>,
        end: Option<Box<Expr>>,
        step: Option<Box<Expr>>,
        span: Span,
    },
    Index(Expr),
}

/// `train { steps: 100, batch: 32 }`
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub kind: SectionKind,
    pub kind_span: Span,
    pub settings: Vec<Setting>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Train,
    Eval,
    Generate,
    Sweep,
    Analyze,
}

impl SectionKind {
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Train => "train",
            SectionKind::Eval => "eval",
            SectionKind::Generate => "generate",
            SectionKind::Sweep => "sweep",
            SectionKind::Analyze => "analyze",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `loss cross_entropy(model(x), y)`
#[derive(Clone, Debug, PartialEq)]
pub struct LossDecl {
    pub value: Expr,
    pub span: Span,
}

/// `optimizer adam(lr: 1e-3) schedule warmup(100) then cosine()`
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerDecl {
    pub value: Expr,
    pub schedule: Vec<Expr>,
    pub span: Span,
}
