//! The checker's diagnostics as LSP diagnostics: same code, message and
//! range; the help line appended to the message; secondary labels as
//! related information (in the document, or in the library's files).

use lsp_types::{DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Url};

use super::analysis::Analysis;
use super::navigate::StdFiles;
use crate::diagnostics::{Diagnostic, Severity, Span};

pub fn convert(analysis: &Analysis, uri: &Url, std: &StdFiles) -> Vec<lsp_types::Diagnostic> {
    let user = analysis.program.sources.name(0).to_string();
    let location = |span: Span| -> Option<Location> {
        if analysis.program.sources.name(span.file) == user {
            Some(Location::new(uri.clone(), analysis.range(span)))
        } else {
            std.location(analysis, span)
        }
    };
    analysis
        .program
        .diagnostics
        .iter()
        .filter(|d| analysis.program.sources.name(d.primary.span.file) == user)
        .map(|d| one(d, &location, analysis))
        .collect()
}

fn one(d: &Diagnostic, location: &dyn Fn(Span) -> Option<Location>, analysis: &Analysis) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    if !d.primary.message.is_empty() {
        message.push_str(&format!("\n{}", d.primary.message));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .filter_map(|label| {
            Some(DiagnosticRelatedInformation {
                location: location(label.span)?,
                message: label.message.clone(),
            })
        })
        .collect();
    lsp_types::Diagnostic {
        range: analysis.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        source: Some("nnc".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}
