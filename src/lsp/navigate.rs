//! Go to definition and document symbols, from the ASTs.
//!
//! Names resolve as the checker resolves them: a block's own bindings
//! (inputs, sizes of its signature, `x = ...`, `param`, `state`) before the
//! cursor, then the file's constants, sizes and data, then blocks (the
//! user's, then the standard library's). Standard-library blocks live in
//! files written once to a cache directory ([`StdFiles`]), so every editor
//! can open them; they are read-only.

use std::path::{Path, PathBuf};

use lsp_types::{DocumentSymbol, Location, SymbolKind, Url};

use super::analysis::Analysis;
use crate::diagnostics::Span;
use crate::syntax::ast::{self, BlockDecl, DimExpr, Expr, ExprKind, Item, Stmt, TypeExpr};

/// The standard library as files on disk: `<cache>/nnc/std-<version>/layers.nn`.
pub struct StdFiles {
    pub dir: PathBuf,
    /// `(file name in the source map, path on disk)`.
    pub files: Vec<(String, PathBuf)>,
}

impl StdFiles {
    /// Writes the library files (read-only) unless they are there already.
    pub fn write() -> StdFiles {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (_, text) in crate::stdlib::FILES {
            for b in text.bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        let dir = cache
            .join("nnc")
            .join(format!("std-{}-{:08x}", env!("CARGO_PKG_VERSION"), hash as u32));
        let _ = std::fs::create_dir_all(&dir);
        let mut files = Vec::new();
        for (name, text) in crate::stdlib::FILES {
            let base = name.rsplit('/').next().unwrap_or(name);
            let path = dir.join(base);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(*text) {
                let _ = std::fs::remove_file(&path);
                if std::fs::write(&path, text).is_ok() {
                    if let Ok(meta) = std::fs::metadata(&path) {
                        let mut permissions = meta.permissions();
                        permissions.set_readonly(true);
                        let _ = std::fs::set_permissions(&path, permissions);
                    }
                }
            }
            files.push((name.to_string(), path));
        }
        StdFiles { dir, files }
    }

    pub fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
    }

    /// The location of a span in a standard-library file of `analysis`.
    pub fn location(&self, analysis: &Analysis, span: Span) -> Option<Location> {
        let name = analysis.program.sources.name(span.file);
        let (_, path) = self.files.iter().find(|(n, _)| n == name)?;
        let text = analysis.program.sources.text(span.file);
        let index = super::analysis::LineIndex::new(text);
        Some(Location::new(
            Url::from_file_path(path).ok()?,
            index.range(text, span.start as usize, span.end as usize),
        ))
    }
}

/// Where a name is defined: a span of the user's file or of the library.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    User(Span),
    Std(Span),
}

/// The definition of the name at `offset`.
pub fn definition(analysis: &Analysis, offset: usize) -> Option<Target> {
    let (word, start, _) = analysis.word_at(offset)?;
    if analysis.text[..start].trim_end().ends_with('.') {
        return None; // a field: `data.x`
    }
    let file = analysis.user_file();
    if let Some(block) = enclosing_block(file, offset) {
        if let Some(span) = local_binding(block, word, offset) {
            return Some(Target::User(span));
        }
    }
    for item in &file.items {
        match item {
            Item::Const(d) if d.name.name == word => return Some(Target::User(d.name.span)),
            Item::Data(d) if d.name.name == word => return Some(Target::User(d.name.span)),
            Item::Dim(d) => {
                if let Some(n) = d.names.iter().find(|n| n.name == word) {
                    return Some(Target::User(n.span));
                }
            }
            Item::Block(b) if b.name.name == word => return Some(Target::User(b.name.span)),
            _ => {}
        }
    }
    std_block(analysis, word).map(|b| Target::Std(b.name.span))
}

/// A standard-library block by name.
pub fn std_block<'a>(analysis: &'a Analysis, name: &str) -> Option<&'a BlockDecl> {
    analysis
        .program
        .files
        .iter()
        .skip(1)
        .flat_map(|f| &f.items)
        .find_map(|item| match item {
            Item::Block(b) if b.name.name == name => Some(b),
            _ => None,
        })
}

/// A block of the user's file or the library by name, the user's first.
pub fn any_block<'a>(analysis: &'a Analysis, name: &str) -> Option<&'a BlockDecl> {
    analysis
        .user_file()
        .items
        .iter()
        .find_map(|item| match item {
            Item::Block(b) if b.name.name == name => Some(b),
            _ => None,
        })
        .or_else(|| std_block(analysis, name))
}

pub fn enclosing_block(file: &ast::File, offset: usize) -> Option<&BlockDecl> {
    file.items.iter().find_map(|item| match item {
        Item::Block(b) if (b.span.start as usize) <= offset && offset <= b.span.end as usize => Some(b),
        _ => None,
    })
}

/// Every name a block binds, with its span, in source order: inputs, the
/// sizes named in its signature, and the statements of its bodies.
pub fn block_bindings(block: &BlockDecl) -> Vec<(&str, Span)> {
    let mut out = Vec::new();
    for param in &block.params {
        out.push((param.name.name.as_str(), param.name.span));
    }
    for param in &block.params {
        if let TypeExpr::Tensor(t) = &param.ty {
            for dim in &t.dims {
                if let DimExpr::Expr(Expr {
                    kind: ExprKind::Name(n),
                    span,
                }) = dim
                {
                    if !out.iter().any(|(name, _)| name == n) {
                        out.push((n.as_str(), *span));
                    }
                }
            }
        }
    }
    body_bindings(&block.body, &mut out);
    out
}

fn body_bindings<'a>(body: &'a ast::Body, out: &mut Vec<(&'a str, Span)>) {
    for stmt in &body.stmts {
        match stmt {
            Stmt::Let { name, value, .. } => {
                expr_bindings(value, out);
                out.push((&name.name, name.span));
            }
            Stmt::Param { name, .. } | Stmt::State { name, .. } => out.push((&name.name, name.span)),
            Stmt::Update { value, .. } => expr_bindings(value, out),
        }
    }
    expr_bindings(&body.result, out);
}

/// Bindings inside the bodies of `if` expressions.
fn expr_bindings<'a>(expr: &'a Expr, out: &mut Vec<(&'a str, Span)>) {
    if let ExprKind::If {
        then_body, else_body, ..
    } = &expr.kind
    {
        body_bindings(then_body, out);
        body_bindings(else_body, out);
    }
}

/// The binding of `name` in force at `offset`: the last one before it (a
/// binding is in force from its own name on).
fn local_binding(block: &BlockDecl, name: &str, offset: usize) -> Option<Span> {
    let bindings = block_bindings(block);
    let before = bindings
        .iter()
        .filter(|(n, s)| *n == name && s.start as usize <= offset)
        .max_by_key(|(_, s)| s.start)
        .map(|(_, s)| *s);
    // Signature names are in force everywhere in the block.
    before.or_else(|| bindings.iter().find(|(n, _)| *n == name).map(|(_, s)| *s))
}

/// The outline: items, with a block's inputs and statements and a
/// section's settings as children.
#[allow(deprecated)] // `DocumentSymbol::deprecated` must be written out
pub fn symbols(analysis: &Analysis) -> Vec<DocumentSymbol> {
    let symbol = |name: String, detail: Option<String>, kind: SymbolKind, span: Span, selection: Span, children| {
        DocumentSymbol {
            name,
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: analysis.range(span),
            selection_range: analysis.range(selection),
            children,
        }
    };
    let text = |span: Span| {
        analysis
            .text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
            .to_string()
    };
    let mut out = Vec::new();
    for item in &analysis.user_file().items {
        out.push(match item {
            Item::Const(d) => symbol(
                d.name.name.clone(),
                Some(text(d.value.span)),
                SymbolKind::CONSTANT,
                d.span,
                d.name.span,
                None,
            ),
            Item::Dim(d) => {
                let names: Vec<&str> = d.names.iter().map(|n| n.name.as_str()).collect();
                let first = d.names.first().map_or(d.span, |n| n.span);
                symbol(
                    names.join(", "),
                    Some("dim".into()),
                    SymbolKind::TYPE_PARAMETER,
                    d.span,
                    first,
                    None,
                )
            }
            Item::Data(d) => symbol(
                d.name.name.clone(),
                Some(text(d.source.span)),
                SymbolKind::VARIABLE,
                d.span,
                d.name.span,
                None,
            ),
            Item::Block(b) => {
                let mut children = Vec::new();
                for p in &b.params {
                    let ty = match &p.ty {
                        TypeExpr::Tensor(t) => text(t.span),
                        TypeExpr::Hyper(h, _) => h.name().to_string(),
                    };
                    children.push(symbol(
                        p.name.name.clone(),
                        Some(ty),
                        SymbolKind::VARIABLE,
                        p.span,
                        p.name.span,
                        None,
                    ));
                }
                for stmt in &b.body.stmts {
                    let (name, kind, span) = match stmt {
                        Stmt::Param { name, span, .. } => (name, SymbolKind::FIELD, span),
                        Stmt::State { name, span, .. } => (name, SymbolKind::FIELD, span),
                        Stmt::Let { name, span, .. } => (name, SymbolKind::VARIABLE, span),
                        Stmt::Update { .. } => continue,
                    };
                    children.push(symbol(name.name.clone(), None, kind, *span, name.span, None));
                }
                let kind = match b.kind {
                    ast::BlockKind::Model => SymbolKind::CLASS,
                    ast::BlockKind::Block => SymbolKind::FUNCTION,
                };
                let signature = text(Span::new(
                    b.span.file,
                    b.name.span.end as usize,
                    b.body.span.start as usize,
                ));
                symbol(
                    b.name.name.clone(),
                    Some(signature.trim().to_string()),
                    kind,
                    b.span,
                    b.name.span,
                    Some(children),
                )
            }
            Item::Loss(d) => symbol(
                "loss".into(),
                Some(text(d.value.span)),
                SymbolKind::FUNCTION,
                d.span,
                d.value.span,
                None,
            ),
            Item::Optimizer(d) => symbol(
                "optimizer".into(),
                Some(text(d.value.span)),
                SymbolKind::OBJECT,
                d.span,
                d.value.span,
                None,
            ),
            Item::Section(s) => {
                let children = s
                    .settings
                    .iter()
                    .map(|x| {
                        symbol(
                            x.name.name.clone(),
                            Some(text(x.value.span)),
                            SymbolKind::PROPERTY,
                            x.span,
                            x.name.span,
                            None,
                        )
                    })
                    .collect();
                symbol(
                    s.kind.name().into(),
                    None,
                    SymbolKind::NAMESPACE,
                    s.span,
                    s.kind_span,
                    Some(children),
                )
            }
        });
    }
    out
}
