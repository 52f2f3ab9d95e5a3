//! The settings the language knows: data sources, optimizers, schedules and
//! the `train`/`eval`/`generate`/`sweep`/`analyze` sections, each with its
//! parameters, ranges, defaults and a one-line description.

use super::config::{float, int, int_in, p, positive, Default::*, Kind, Param, Schema};

pub const METRICS: &[&str] = &[
    "loss",
    "accuracy",
    "token_accuracy",
    "exact_match",
    "mae",
    "mse",
    "perplexity",
    "label_error_rate",
];

const UNIT: Kind = float(0.0, 1.0);
const NON_NEGATIVE: Kind = float(0.0, f64::INFINITY);
/// A fraction strictly between 0 and 1 (validation share, decay rates).
const FRACTION: Kind = Kind::Float {
    min: 0.0,
    max: 0.999_999,
    open_min: false,
};
/// A share that must leave something on both sides: text's validation
/// share (0 would leave no validation text at all).
const SHARE: Kind = Kind::Float {
    min: 0.0,
    max: 0.999_999,
    open_min: true,
};

pub const AUGMENTS: &[Schema] = &[
    Schema {
        name: "flip",
        params: &[],
        doc: "mirror images left-right with probability 1/2",
    },
    Schema {
        name: "shift",
        params: &[p("pixels", int(1), Int(1), "largest shift in each direction")],
        doc: "shift images by up to `pixels`, filling with zeros",
    },
];

/// How a CSV text column becomes tokens.
pub const TOKENIZERS: &[Schema] = &[
    Schema {
        name: "chars",
        params: &[],
        doc: "one token per character",
    },
    Schema {
        name: "words",
        params: &[],
        doc: "one token per run of non-whitespace characters",
    },
];

/// The tasks of the `passages` source.
pub const PASSAGE_TASKS: &[Schema] = &[
    Schema {
        name: "classify",
        params: &[p(
            "marker",
            Kind::Str,
            Required,
            "text on a line near the start of each document, e.g. \"by William Shakespeare\"",
        )],
        doc: "which document a passage comes from",
    },
    Schema {
        name: "tag",
        params: &[],
        doc: "restore the case of every letter of a lower-cased passage",
    },
    Schema {
        name: "pair",
        params: &[],
        doc: "does the second passage follow the first",
    },
    Schema {
        name: "qa",
        params: &[],
        doc: "the span of the word after the question word in the passage",
    },
];

pub const DATA_SOURCES: &[Schema] = &[
    Schema {
        name: "csv",
        params: &[
            p(
                "path",
                Kind::Str,
                Required,
                "CSV file with a header row, relative to the .nn file",
            ),
            p(
                "x",
                Kind::Columns,
                Absent,
                "feature columns: a name, a list, or a range like \"p0\"..\"p63\" (or give `text`)",
            ),
            p("y", Kind::Str, Required, "target column"),
            p(
                "classes",
                int(2),
                Absent,
                "number of classes: the target is a class id (i32)",
            ),
            p(
                "shape",
                Kind::Shape,
                Absent,
                "shape of one example's features, e.g. [1, 8, 8]",
            ),
            p("scale", positive(), Float(1.0), "multiply features by this"),
            p(
                "normalize",
                Kind::Bool,
                Bool(false),
                "standardize features with training-split statistics",
            ),
            p(
                "augment",
                Kind::Calls(AUGMENTS),
                Absent,
                "image augmentations for training batches",
            ),
            p("val", FRACTION, Float(0.2), "share of rows held out for validation"),
            p("folds", int(2), Absent, "k-fold cross-validation instead of one split"),
            p("seed", int(0), Int(0), "seed of the split"),
            p(
                "text",
                Kind::Str,
                Absent,
                "a column of text instead of features: x holds its tokens' ids",
            ),
            p(
                "tokens",
                Kind::Call(TOKENIZERS),
                Absent,
                "with `text`: how text becomes tokens, `chars` (default) or `words`",
            ),
            p(
                "length",
                int(1),
                Absent,
                "with `text`: tokens per example; longer texts are cut, shorter ones padded at the start",
            ),
            p(
                "vocab",
                int(3),
                Absent,
                "with `text`: token ids, pad (0) and other (1) included; the most frequent training tokens get the rest",
            ),
        ],
        doc: "rows of a CSV file: features x (or a text column's tokens) and a target y",
    },
    Schema {
        name: "series",
        params: &[
            p("path", Kind::Str, Required, "CSV file with a header row"),
            p("column", Kind::Str, Required, "the column holding the series"),
            p("window", int(1), Required, "past values per example"),
            p("horizon", int(1), Int(1), "predict this many steps ahead"),
            p(
                "val_last",
                int(1),
                Required,
                "the last N targets form the validation split",
            ),
            p(
                "normalize",
                Kind::Bool,
                Bool(true),
                "standardize with training statistics",
            ),
            p(
                "weekday",
                Kind::Str,
                Absent,
                "a column of weekday names: field `day` is the target's weekday, 0 = Monday",
            ),
            p(
                "season",
                int(1),
                Absent,
                "the period: validation compares with the value one period before each target",
            ),
        ],
        doc: "sliding windows over a time series: x the window, y the value after it",
    },
    Schema {
        name: "text",
        params: &[
            p("path", Kind::Str, Required, "a UTF-8 text file"),
            p("context", int(1), Required, "characters per example"),
            p(
                "vocab",
                int(2),
                Required,
                "vocabulary size; rarer characters share the last id",
            ),
            p("val", SHARE, Float(0.1), "the last share of the text is for validation"),
        ],
        doc: "text as characters: x a window, y the same window shifted by one",
    },
    Schema {
        name: "passages",
        params: &[
            p("path", Kind::Str, Required, "a UTF-8 text file"),
            p(
                "task",
                Kind::Call(PASSAGE_TASKS),
                Required,
                "classify(marker), tag, pair or qa",
            ),
            p("context", int(5), Required, "tokens per example"),
            p(
                "vocab",
                int(2),
                Required,
                "vocabulary size, as in `text` (ids vocab, vocab + 1, vocab + 2 are [MASK], [CLS], [SEP])",
            ),
            p(
                "held_out",
                SHARE,
                Float(0.1),
                "the last share of the text (for classify: of each document) is for validation; `text`'s `val`",
            ),
            p("train", int(1), Int(8000), "training examples"),
            p("val", int(1), Int(1000), "validation examples"),
            p("seed", int(0), Int(0), "seed of the generator"),
        ],
        doc: "fine-tuning tasks cut from a text: x token ids ([CLS], [SEP]), y a label per example, token or span",
    },
    synthetic("copy", "copy the source sequence"),
    synthetic("reverse", "reverse the source sequence"),
    synthetic("sort", "sort the source sequence"),
    synthetic("add", "add two numbers written as digit sequences"),
    Schema {
        name: "speech",
        params: &[
            p(
                "vocab",
                int(1),
                Int(10),
                "number of label symbols (ids 1..=vocab; 0 is the blank)",
            ),
            p("len", Kind::IntRange, Required, "labels per example, e.g. 2..6"),
            p(
                "duration",
                Kind::IntRange,
                Range(2, 3),
                "frames per symbol and per silence gap",
            ),
            p(
                "silence",
                UNIT,
                Float(0.3),
                "chance of a silence gap before each symbol and at the end",
            ),
            p(
                "noise",
                NON_NEGATIVE,
                Float(0.5),
                "standard deviation of the noise added to every frame",
            ),
            p("features", int(1), Int(16), "values per frame"),
            p("train", int(1), Int(10000), "training examples"),
            p("val", int(1), Int(1000), "validation examples"),
            p("seed", int(0), Int(0), "seed of the generator"),
        ],
        doc: "label sequences read out as noisy frames, for CTC: x the frames, labels the symbols",
    },
    Schema {
        name: "replies",
        params: &[
            p(
                "names",
                int(2),
                Int(1000),
                "made-up names, drawn with frequencies falling as 1/rank",
            ),
            p("train", int(1), Int(8000), "training examples"),
            p("val", int(1), Int(500), "validation examples"),
            p("seed", int(0), Int(0), "seed of the generator"),
        ],
        doc: "generated requests naming people and the template replies that name them again: src, tgt_in, tgt_out",
    },
    Schema {
        name: "slots",
        params: &[
            p(
                "vocab",
                int(3),
                Int(100),
                "word ids: pad (0), other (1) and the most frequent training words",
            ),
            p("train", int(1), Int(4000), "training requests"),
            p("val", int(1), Int(500), "validation requests"),
            p("seed", int(0), Int(0), "seed of the generator"),
        ],
        doc: "generated travel requests with a tag per word: x the word ids, y the tags",
    },
    Schema {
        name: "graphs",
        params: &[
            p("nodes", int(2), Int(12), "nodes per graph"),
            p("values", int(2), Int(8), "node values 0..values (and labels)"),
            p(
                "degree",
                positive(),
                Float(3.0),
                "mean neighbours of a node: each pair is joined with probability degree / (nodes - 1)",
            ),
            p("train", int(1), Int(4000), "training graphs"),
            p("val", int(1), Int(500), "validation graphs"),
            p("seed", int(0), Int(0), "seed of the generator"),
        ],
        doc: "random graphs: x a value per node, edges the adjacency, y per node the largest value among its neighbours",
    },
];

const SYNTHETIC_PARAMS: &[Param] = &[
    p("vocab", int(2), Int(10), "number of distinct symbols"),
    p("len", Kind::IntRange, Required, "sequence length range, e.g. 4..12"),
    p("train", int(1), Int(10000), "training examples"),
    p("val", int(1), Int(1000), "validation examples"),
    p("seed", int(0), Int(0), "seed of the generator"),
];

const fn synthetic(name: &'static str, doc: &'static str) -> Schema {
    Schema {
        name,
        params: SYNTHETIC_PARAMS,
        doc,
    }
}

const OPTIMIZER_COMMON: [Param; 4] = [
    p("lr", positive(), Float(1e-3), "learning rate"),
    p(
        "weight_decay",
        NON_NEGATIVE,
        Float(0.0),
        "L2 penalty (decoupled for adamw)",
    ),
    p(
        "clip_norm",
        positive(),
        Float(f64::INFINITY),
        "clip gradients to this global norm",
    ),
    p(
        "clip_value",
        positive(),
        Float(f64::INFINITY),
        "clip each gradient element to +-this",
    ),
];

pub const OPTIMIZERS: &[Schema] = &[
    Schema {
        name: "sgd",
        params: &[
            OPTIMIZER_COMMON[0],
            OPTIMIZER_COMMON[1],
            OPTIMIZER_COMMON[2],
            OPTIMIZER_COMMON[3],
            p("momentum", FRACTION, Float(0.0), "momentum coefficient"),
            p("nesterov", Kind::Bool, Bool(false), "Nesterov momentum"),
        ],
        doc: "stochastic gradient descent, optionally with momentum",
    },
    Schema {
        name: "momentum",
        params: &[
            OPTIMIZER_COMMON[0],
            OPTIMIZER_COMMON[1],
            OPTIMIZER_COMMON[2],
            OPTIMIZER_COMMON[3],
            p("momentum", FRACTION, Float(0.9), "momentum coefficient"),
            p("nesterov", Kind::Bool, Bool(false), "Nesterov momentum"),
        ],
        doc: "SGD with momentum (0.9 by default)",
    },
    Schema {
        name: "adagrad",
        params: &[
            OPTIMIZER_COMMON[0],
            OPTIMIZER_COMMON[1],
            OPTIMIZER_COMMON[2],
            OPTIMIZER_COMMON[3],
            p("eps", positive(), Float(1e-10), "added to the denominator"),
        ],
        doc: "per-parameter rates from the sum of squared gradients",
    },
    Schema {
        name: "rmsprop",
        params: &[
            OPTIMIZER_COMMON[0],
            OPTIMIZER_COMMON[1],
            OPTIMIZER_COMMON[2],
            OPTIMIZER_COMMON[3],
            p("decay", FRACTION, Float(0.99), "decay of the squared-gradient average"),
            p("eps", positive(), Float(1e-8), "added to the denominator"),
        ],
        doc: "per-parameter rates from a moving average of squared gradients",
    },
    Schema {
        name: "adam",
        params: &adam_params(0.0),
        doc: "Adam",
    },
    Schema {
        name: "adamw",
        params: &adam_params(0.01),
        doc: "Adam with decoupled weight decay",
    },
];

const fn adam_params(decay: f64) -> [Param; 7] {
    [
        OPTIMIZER_COMMON[0],
        p("weight_decay", NON_NEGATIVE, Float(decay), "weight decay"),
        OPTIMIZER_COMMON[2],
        OPTIMIZER_COMMON[3],
        p("beta1", FRACTION, Float(0.9), "decay of the first moment"),
        p("beta2", FRACTION, Float(0.999), "decay of the second moment"),
        p("eps", positive(), Float(1e-8), "added to the denominator"),
    ]
}

pub const SCHEDULES: &[Schema] = &[
    Schema {
        name: "constant",
        params: &[],
        doc: "keep the learning rate",
    },
    Schema {
        name: "warmup",
        params: &[p("steps", int(1), Required, "steps of linear warm-up from 0")],
        doc: "linear warm-up from 0 to the learning rate",
    },
    Schema {
        name: "step",
        params: &[
            p("every", int(1), Required, "steps between decays"),
            p("gamma", float(0.0, 1.0), Float(0.1), "factor at each decay"),
        ],
        doc: "multiply the rate by gamma every N steps",
    },
    Schema {
        name: "exponential",
        params: &[p("gamma", float(0.0, 1.0), Required, "factor per step")],
        doc: "multiply the rate by gamma every step",
    },
    Schema {
        name: "cosine",
        params: &[p("min", UNIT, Float(0.0), "final rate, as a share of the initial one")],
        doc: "cosine decay to `min` over the remaining steps",
    },
    Schema {
        name: "linear",
        params: &[p("min", UNIT, Float(0.0), "final rate, as a share of the initial one")],
        doc: "linear decay to `min` over the remaining steps",
    },
];

pub const METHODS: &[Schema] = &[
    Schema {
        name: "greedy",
        params: &[],
        doc: "the most likely token at each step",
    },
    Schema {
        name: "beam",
        params: &[
            p("width", int(1), Int(4), "hypotheses kept"),
            p(
                "length_penalty",
                NON_NEGATIVE,
                Float(1.0),
                "divide scores by length^penalty",
            ),
        ],
        doc: "beam search with length normalization",
    },
    Schema {
        name: "sample",
        params: &[
            p("temperature", positive(), Float(1.0), "divide logits by this"),
            p("top_k", int(1), Absent, "sample among the k most likely"),
        ],
        doc: "sample from the softmax",
    },
];

/// Decoders of CTC outputs for `label_error_rate`.
pub const CTC_DECODERS: &[Schema] = &[
    Schema {
        name: "greedy",
        params: &[],
        doc: "the best class of each frame, repeats merged, blanks dropped",
    },
    Schema {
        name: "beam",
        params: &[p("width", int(1), Int(8), "label prefixes kept")],
        doc: "prefix beam search over label sequences",
    },
];

pub const SECTIONS: &[Schema] = &[
    Schema {
        name: "train",
        params: &[
            p("steps", int(1), Absent, "training steps (or give epochs)"),
            p(
                "epochs",
                int(1),
                Absent,
                "passes over the training split (or give steps)",
            ),
            p("batch", int(1), Int(32), "examples per step"),
            p("seed", int(0), Int(0), "seed of initialization, shuffling and dropout"),
            p("checkpoint_every", int(1), Absent, "steps between checkpoints"),
            p("log_every", int(1), Absent, "steps between progress lines"),
            p(
                "init_from",
                Kind::Str,
                Absent,
                "a checkpoint (relative to the file) whose parameters that match by path and shape start the run",
            ),
            p(
                "from_scratch",
                Kind::Bool,
                Bool(false),
                "also train the same model from random initialization for the same steps and print both",
            ),
        ],
        doc: "how long and how to train",
    },
    Schema {
        name: "eval",
        params: &[
            p(
                "every",
                int(1),
                Absent,
                "steps between evaluations (default: at the end only)",
            ),
            p(
                "metrics",
                Kind::Words(METRICS),
                Absent,
                "metrics on the validation split",
            ),
            p("batch", int(1), Absent, "examples per evaluation batch"),
            p(
                "decode",
                Kind::Call(CTC_DECODERS),
                Absent,
                "how label_error_rate decodes CTC outputs: greedy (default) or beam(width)",
            ),
        ],
        doc: "evaluation on the validation split",
    },
    Schema {
        name: "generate",
        params: &[
            p(
                "method",
                Kind::CallSet(METHODS),
                Absent,
                "greedy, beam(width, length_penalty) or sample(temperature, top_k), or a list of them to compare",
            ),
            p("prompt", Kind::Str, Absent, "text to start from (text models)"),
            p("length", int(1), Int(100), "tokens to generate"),
            p(
                "from",
                Kind::Split,
                Absent,
                "the split to decode, of the model's data: `.val` (the default) or `.train` (seq2seq models)",
            ),
            p("samples", int(1), Int(3), "how many samples to print"),
        ],
        doc: "text or sequences produced after training",
    },
    Schema {
        name: "analyze",
        params: &[
            p(
                "report",
                Kind::Words(&["params", "shapes", "flops", "memory"]),
                Absent,
                "what to report about the model",
            ),
            p(
                "hessian",
                Kind::Bool,
                Bool(false),
                "the Hessian of the training loss after training: eigenvalues, minimum ratio, critical point",
            ),
            p(
                "eigenvalues",
                Kind::Call(EIGENVALUES),
                Absent,
                "`all` (dense; the default up to 2,000 parameters) or `lanczos(steps)` (the extreme ones)",
            ),
            p(
                "examples",
                int(1),
                Int(1000),
                "training examples (the first ones) the analyzed loss averages over",
            ),
            p(
                "gradient_tolerance",
                positive(),
                Float(1e-3),
                "a gradient norm above this is `not_critical`",
            ),
            p(
                "saddle_step",
                positive(),
                Float(0.1),
                "the longest step taken along the most negative direction",
            ),
        ],
        doc: "reports about the model",
    },
];

/// The most parameters `analyze { eigenvalues: all }` takes: the dense
/// Hessian costs one Hessian-vector product per parameter and a dense
/// eigensolver (cubic in the count).
pub const HESSIAN_DENSE_MAX: usize = 2000;

pub const EIGENVALUES: &[Schema] = &[
    Schema {
        name: "all",
        params: &[],
        doc: "every eigenvalue, from the dense Hessian (one product per parameter)",
    },
    Schema {
        name: "lanczos",
        params: &[p(
            "steps",
            int_in(2, 500),
            Int(50),
            "Lanczos iterations (Hessian-vector products), at most the parameter count",
        )],
        doc: "the extreme eigenvalues by Lanczos iteration, and the minimum ratio estimated from them",
    },
];
