//! `nnc lsp`: a Language Server Protocol server over stdio. LSP messages in,
//! responses and `publishDiagnostics` out.
//!
//! Each open document is checked on open and on every change (full-text
//! sync); its [`analysis::Analysis`] — the checker's program plus the value
//! seen at each span — answers hover, go to definition, completion and
//! document symbols; formatting is `nnc fmt`. A request that fails, or even
//! panics, gets an error response; the server goes on.

pub mod analysis;
pub mod complete;
pub mod diagnostics;
pub mod hover;
pub mod navigate;

use std::collections::HashMap;
use std::error::Error;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification as _, PublishDiagnostics,
};
use lsp_types::request::{Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest, Request as _};
use lsp_types::{
    CompletionOptions, CompletionResponse, DocumentSymbolResponse, GotoDefinitionResponse, Hover, HoverContents,
    HoverProviderCapability, Location, MarkupContent, MarkupKind, OneOf, PublishDiagnosticsParams, Range,
    ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind, TextEdit, Url,
};

use analysis::Analysis;
use navigate::{StdFiles, Target};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Runs the server on stdin/stdout until the client says `exit`.
pub fn run() -> ExitCode {
    // Checking, parsing and formatting recurse with the program's nesting.
    let server = std::thread::Builder::new()
        .name("nnc-lsp".into())
        .stack_size(256 << 20)
        .spawn(|| {
            let (connection, io_threads) = Connection::stdio();
            let result = serve(&connection);
            drop(connection);
            result.and(io_threads.join().map_err(Into::into))
        });
    match server.map(|handle| handle.join()) {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(error))) => {
            eprintln!("error: nnc lsp: {error}");
            ExitCode::from(1)
        }
        _ => {
            eprintln!("error: nnc lsp stopped");
            ExitCode::from(1)
        }
    }
}

pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(["(", ",", "[", "{", " "].map(String::from).to_vec()),
            ..Default::default()
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..Default::default()
    }
}

/// Serves one connection: the initialize handshake, then messages until
/// `shutdown` (and `exit`).
pub fn serve(connection: &Connection) -> Result<()> {
    connection.initialize(serde_json::to_value(capabilities())?)?;
    let mut server = Server {
        documents: HashMap::new(),
        std: StdFiles::write(),
    };
    for message in &connection.receiver {
        match message {
            Message::Request(request) => {
                if connection.handle_shutdown(&request)? {
                    return Ok(());
                }
                let id = request.id.clone();
                let response = std::panic::catch_unwind(AssertUnwindSafe(|| server.request(request)))
                    .unwrap_or_else(|_| Err("internal error".into()))
                    .unwrap_or_else(|error| Response::new_err(id, ErrorCode::InternalError as i32, error.to_string()));
                connection.sender.send(response.into())?;
            }
            Message::Notification(notification) => {
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| server.notification(notification)));
                if let Ok(Ok(Some(diagnostics))) = out {
                    connection.sender.send(diagnostics.into())?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

struct Server {
    documents: HashMap<Url, Analysis>,
    std: StdFiles,
}

impl Server {
    /// Handles a notification; returns diagnostics to publish.
    fn notification(&mut self, notification: Notification) -> Result<Option<Notification>> {
        let (uri, version, text) = match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let params: lsp_types::DidOpenTextDocumentParams = serde_json::from_value(notification.params)?;
                let doc = params.text_document;
                (doc.uri, doc.version, doc.text)
            }
            DidChangeTextDocument::METHOD => {
                let params: lsp_types::DidChangeTextDocumentParams = serde_json::from_value(notification.params)?;
                let uri = params.text_document.uri;
                let mut text = self.documents.get(&uri).map(|a| a.text.clone()).unwrap_or_default();
                for change in params.content_changes {
                    match change.range {
                        None => text = change.text,
                        Some(range) => {
                            let index = analysis::LineIndex::new(&text);
                            let start = index.offset(&text, range.start);
                            let end = index.offset(&text, range.end).max(start);
                            text.replace_range(start..end, &change.text);
                        }
                    }
                }
                (uri, params.text_document.version, text)
            }
            DidCloseTextDocument::METHOD => {
                let params: lsp_types::DidCloseTextDocumentParams = serde_json::from_value(notification.params)?;
                self.documents.remove(&params.text_document.uri);
                let clear = PublishDiagnosticsParams::new(params.text_document.uri, Vec::new(), None);
                return Ok(Some(Notification::new(PublishDiagnostics::METHOD.into(), clear)));
            }
            _ => return Ok(None),
        };
        let path = uri.to_file_path().ok();
        let analysis = Analysis::new(text, path.as_deref());
        // The library's files are read-only references, not programs.
        let library = path.as_deref().is_some_and(|p| self.std.contains(p));
        let diagnostics = if library {
            Vec::new()
        } else {
            diagnostics::convert(&analysis, &uri, &self.std)
        };
        self.documents.insert(uri.clone(), analysis);
        let params = PublishDiagnosticsParams::new(uri, diagnostics, Some(version));
        Ok(Some(Notification::new(PublishDiagnostics::METHOD.into(), params)))
    }

    fn request(&mut self, request: Request) -> Result<Response> {
        let id = request.id.clone();
        let result = match request.method.as_str() {
            HoverRequest::METHOD => {
                let params: lsp_types::HoverParams = serde_json::from_value(request.params)?;
                let at = params.text_document_position_params;
                self.with_document(&at.text_document.uri, |a| {
                    let (text, span) = hover::hover(a, a.offset(at.position))?;
                    Some(Hover {
                        contents: HoverContents::Markup(MarkupContent {
                            kind: MarkupKind::Markdown,
                            value: text,
                        }),
                        range: Some(a.range(span)),
                    })
                })
                .map(serde_json::to_value)
            }
            GotoDefinition::METHOD => {
                let params: lsp_types::GotoDefinitionParams = serde_json::from_value(request.params)?;
                let at = params.text_document_position_params;
                let uri = at.text_document.uri;
                let std = &self.std;
                self.with_document(&uri, |a| {
                    let location = match navigate::definition(a, a.offset(at.position))? {
                        Target::User(span) => Location::new(uri.clone(), a.range(span)),
                        Target::Std(span) => std.location(a, span)?,
                    };
                    Some(GotoDefinitionResponse::Scalar(location))
                })
                .map(serde_json::to_value)
            }
            Completion::METHOD => {
                let params: lsp_types::CompletionParams = serde_json::from_value(request.params)?;
                let at = params.text_document_position;
                self.with_document(&at.text_document.uri, |a| {
                    Some(CompletionResponse::Array(complete::complete(a, a.offset(at.position))))
                })
                .map(serde_json::to_value)
            }
            DocumentSymbolRequest::METHOD => {
                let params: lsp_types::DocumentSymbolParams = serde_json::from_value(request.params)?;
                self.with_document(&params.text_document.uri, |a| {
                    Some(DocumentSymbolResponse::Nested(navigate::symbols(a)))
                })
                .map(serde_json::to_value)
            }
            Formatting::METHOD => {
                let params: lsp_types::DocumentFormattingParams = serde_json::from_value(request.params)?;
                self.with_document(&params.text_document.uri, |a| {
                    let formatted = crate::fmt::format(&a.text).text;
                    let end = a.index.position(&a.text, a.text.len());
                    Some(if formatted == a.text {
                        Vec::new()
                    } else {
                        vec![TextEdit::new(Range::new(Default::default(), end), formatted)]
                    })
                })
                .map(serde_json::to_value)
            }
            _ => {
                return Ok(Response::new_err(
                    id,
                    ErrorCode::MethodNotFound as i32,
                    format!("unsupported request `{}`", request.method),
                ))
            }
        };
        Ok(Response::new_ok(
            id,
            result.transpose()?.unwrap_or(serde_json::Value::Null),
        ))
    }

    /// Runs `f` on a document's analysis; `None` for unknown documents.
    fn with_document<T>(&self, uri: &Url, f: impl FnOnce(&Analysis) -> Option<T>) -> Option<T> {
        self.documents.get(uri).and_then(f)
    }
}
