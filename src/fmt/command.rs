//! `nnc fmt`: files in, formatted files (or, with `--check`, a verdict) out.
//! `-` reads standard input and writes standard output, for editors.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Formats each file in place, or with `check` only reports the files that
/// are not formatted. Exit code 0, 1 (`--check` found an unformatted file)
/// or 2 (a file could not be read or written).
pub fn run(files: &[PathBuf], check: bool) -> ExitCode {
    let mut unformatted = false;
    for path in files {
        let stdin = path.as_os_str() == "-";
        let text = if stdin {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => text,
                Err(e) => {
                    eprintln!("error: cannot read standard input: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("error: cannot read `{}`: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        };
        let name = if stdin {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        let formatted = super::format(&text);
        let kept = formatted.broken + formatted.unchanged;
        if kept > 0 {
            eprintln!(
                "note: {name}: {kept} item{} with syntax errors left as written (`nnc check` shows them)",
                if kept == 1 { "" } else { "s" }
            );
        }
        if check {
            if formatted.text != text {
                println!("{name} is not formatted");
                unformatted = true;
            }
        } else if stdin {
            let _ = std::io::stdout().lock().write_all(formatted.text.as_bytes());
        } else if formatted.text != text {
            if let Err(e) = std::fs::write(path, &formatted.text) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    if unformatted {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
