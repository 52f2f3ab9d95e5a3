//! `nnc lsp` driven over stdio as an editor drives it: open an example,
//! edit in a shape error and receive its diagnostic (code, range), hover a
//! name and read its shape, jump to a standard-library block, complete the
//! arguments of `linear(x, `, list symbols, format, shut down cleanly. And
//! the server survives the fuzzer's inputs replayed as edits.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::root;
use crate::fuzz::{corpus, mutate, Rng};

/// A JSON-RPC client on a child's stdin/stdout.
struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
    /// Notifications received while waiting for something else.
    pending: Vec<Value>,
}

impl Client {
    fn start(cache: &std::path::Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .arg("lsp")
            .env("XDG_CACHE_HOME", cache)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nnc lsp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                reader.read_exact(&mut body).unwrap();
                if sender.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            messages,
            next_id: 1,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn receive(&mut self) -> Value {
        self.messages
            .recv_timeout(Duration::from_secs(60))
            .expect("the server answers within a minute")
    }

    /// Sends a request and waits for its response's `result`.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.receive();
            if message["id"] == json!(id) {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
            self.pending.push(message);
        }
    }

    /// Waits for the diagnostics of `uri` at `version`.
    fn diagnostics(&mut self, uri: &str, version: i64) -> Vec<Value> {
        loop {
            let message = match self
                .pending
                .iter()
                .position(|m| m["method"] == "textDocument/publishDiagnostics")
            {
                Some(i) => self.pending.remove(i),
                None => self.receive(),
            };
            let params = &message["params"];
            if message["method"] == "textDocument/publishDiagnostics"
                && params["uri"] == uri
                && params["version"] == version
            {
                return params["diagnostics"].as_array().unwrap().clone();
            }
        }
    }
}

fn position(text: &str, offset: usize) -> Value {
    let line = text[..offset].matches('\n').count();
    let column = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1);
    json!({"line": line, "character": column})
}

#[test]
fn an_editor_session() {
    let cache = std::env::temp_dir().join(format!("nnc-lsp-cache-{}", std::process::id()));
    let mut client = Client::start(&cache);
    let init = client.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    assert_eq!(init["capabilities"]["hoverProvider"], json!(true));
    client.notify("initialized", json!({}));

    let path = root().join("examples/digits_mlp.nn");
    let uri = format!("file://{}", path.display());
    let original = std::fs::read_to_string(&path).unwrap();
    let doc = json!({"uri": uri});
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "nn", "version": 1, "text": original}}),
    );
    assert_eq!(client.diagnostics(&uri, 1), Vec::<Value>::new(), "the example is clean");

    // A shape error: a [B, 128] by [B, 128] product.
    let anchor = "    h = relu(linear(x, H))\n";
    let edited = original.replace(anchor, &format!("{anchor}    bad = h @ h\n"));
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": edited}]}),
    );
    let diagnostics = client.diagnostics(&uri, 2);
    let at = edited.find("h @ h").unwrap() + 2;
    let matmul: Vec<&Value> = diagnostics.iter().filter(|d| d["code"] == "E0302").collect();
    assert_eq!(matmul.len(), 1, "{diagnostics:?}");
    assert_eq!(matmul[0]["range"]["start"], position(&edited, at));
    assert_eq!(matmul[0]["range"]["end"], position(&edited, at + 1));
    assert_eq!(matmul[0]["severity"], 1);
    assert!(matmul[0]["message"].as_str().unwrap().contains("128"), "{}", matmul[0]);

    // Hover: the shape of `h`, bound to relu(linear(x, H)) with H = 128.
    let h = edited.find("    h = ").unwrap() + 4;
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": position(&edited, h)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("h: f32[B, 128]"), "{text}");
    // A call: the block's signature and what this call returns.
    let call = edited.find("linear(dropout").unwrap();
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": position(&edited, call + 2)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("block linear(x: f32[..., I], out: int"), "{text}");
    assert!(text.contains("returns `f32[B, 10]`"), "{text}");

    // Go to the definition of `relu`, in the standard library.
    let relu = edited.find("relu(").unwrap() + 1;
    let definition = client.request(
        "textDocument/definition",
        json!({"textDocument": doc, "position": position(&edited, relu)}),
    );
    let target = definition["uri"].as_str().unwrap();
    assert!(
        target.starts_with("file://") && target.ends_with("/layers.nn"),
        "{definition}"
    );
    let library = std::fs::read_to_string(target.trim_start_matches("file://")).unwrap();
    let line = definition["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert!(
        library.lines().nth(line).unwrap().starts_with("block relu("),
        "{definition}"
    );
    assert_eq!(library, nnc::stdlib::FILES[0].1);
    // And of a user's name: `h` where it is used goes to where it is bound.
    let use_of_h = edited.find("dropout(h").unwrap() + 8;
    let definition = client.request(
        "textDocument/definition",
        json!({"textDocument": doc, "position": position(&edited, use_of_h)}),
    );
    assert_eq!(definition["range"]["start"], position(&edited, h));

    // Completion after `linear(x, `: the parameters still to give.
    let typing = edited.replace("    bad = h @ h\n", "    y = linear(x, \n");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": typing}]}),
    );
    let diagnostics = client.diagnostics(&uri, 3);
    assert!(diagnostics.iter().any(|d| d["code"] == "E0001"), "{diagnostics:?}");
    let cursor = typing.find("linear(x, ").unwrap() + "linear(x, ".len();
    let completion = client.request(
        "textDocument/completion",
        json!({"textDocument": doc, "position": position(&typing, cursor)}),
    );
    let items = completion.as_array().unwrap();
    let field = |label: &str| items.iter().find(|i| i["label"] == label && i["kind"] == 5);
    let out = field("out").unwrap_or_else(|| panic!("{completion}"));
    assert_eq!(out["detail"], "int");
    assert_eq!(out["preselect"], true);
    assert_eq!(field("bias").unwrap()["detail"], "bool = true");
    assert!(field("x").is_none(), "`x` is given already");

    // Symbols of the (broken) document: the items that parse.
    let symbols = client.request("textDocument/documentSymbol", json!({"textDocument": doc}));
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["H", "CLASSES", "digits", "loss", "optimizer", "train", "eval"]);

    // Formatting returns one edit with the formatted text.
    let messy = original.replace("const H = 128", "const  H=128");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 4}, "contentChanges": [{"text": messy}]}),
    );
    client.diagnostics(&uri, 4);
    let edits = client.request(
        "textDocument/formatting",
        json!({"textDocument": doc, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert_eq!(edits[0]["newText"], original);

    // Completion in a sweep: its axes, then optimizers in `optimizer: [`.
    let sweeping = format!("{original}sweep {{ optimizer: [sgd(), ] }}\n");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 5}, "contentChanges": [{"text": sweeping}]}),
    );
    client.diagnostics(&uri, 5);
    let mut labels = |at: usize| -> Vec<String> {
        let completion = client.request(
            "textDocument/completion",
            json!({"textDocument": doc, "position": position(&sweeping, at)}),
        );
        let items = completion.as_array().unwrap();
        items.iter().map(|i| i["label"].as_str().unwrap().to_string()).collect()
    };
    let axes = labels(sweeping.find("sweep {").unwrap() + "sweep { ".len());
    for axis in ["optimizer", "schedule", "rank_by", "H"] {
        assert!(axes.iter().any(|l| l == axis), "{axis} in {axes:?}");
    }
    let optimizers = labels(sweeping.find("sgd(), ").unwrap() + "sgd(), ".len());
    for name in ["sgd", "adagrad", "rmsprop", "adam"] {
        assert!(optimizers.iter().any(|l| l == name), "{name} in {optimizers:?}");
    }

    assert_eq!(client.request("shutdown", json!(null)), json!(null));
    client.notify("exit", json!(null));
    let status = client.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&cache);
}

/// Mutated programs replayed as edits of one document, with a hover, a
/// definition, a completion and symbols at a random place after each: the
/// server answers every request and never stops.
#[test]
fn fuzzed_edits_never_stop_the_server() {
    let (server, client) = lsp_server::Connection::memory();
    let handle = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || nnc::lsp::serve(&server).map_err(|e| e.to_string()))
        .unwrap();
    let send = |message: lsp_server::Message| client.sender.send(message).unwrap();
    let receive = || {
        client
            .receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("an answer")
    };
    send(lsp_server::Request::new(1.into(), "initialize".into(), json!({"capabilities": {}})).into());
    assert!(matches!(receive(), lsp_server::Message::Response(_)));
    send(lsp_server::Notification::new("initialized".into(), json!({})).into());
    let uri = "file:///nonexistent/fuzz.nn";
    let cases: usize = std::env::var("NNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(150, |n: usize| n / 10);
    let corpus = corpus();
    let mut rng = Rng(0xed17 | 1);
    let mut id = 2;
    for version in 0..cases {
        let base = &corpus[rng.below(corpus.len())];
        let text = mutate(&mut rng, base, &corpus);
        let method = if version == 0 {
            "textDocument/didOpen"
        } else {
            "textDocument/didChange"
        };
        let params = if version == 0 {
            json!({"textDocument": {"uri": uri, "languageId": "nn", "version": 0, "text": text}})
        } else {
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]})
        };
        send(lsp_server::Notification::new(method.into(), params).into());
        let lines = text.lines().count().max(1);
        let position = json!({"line": rng.below(lines + 1), "character": rng.below(60)});
        let requests = [
            (
                "textDocument/hover",
                json!({"textDocument": {"uri": uri}, "position": position}),
            ),
            (
                "textDocument/definition",
                json!({"textDocument": {"uri": uri}, "position": position}),
            ),
            (
                "textDocument/completion",
                json!({"textDocument": {"uri": uri}, "position": position}),
            ),
            ("textDocument/documentSymbol", json!({"textDocument": {"uri": uri}})),
            (
                "textDocument/formatting",
                json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
            ),
        ];
        for (method, params) in requests {
            send(lsp_server::Request::new(id.into(), method.into(), params).into());
            loop {
                match receive() {
                    lsp_server::Message::Response(response) if response.id == id.into() => {
                        assert!(
                            response.error.is_none(),
                            "case {version}: {method}: {response:?}\n{text}"
                        );
                        break;
                    }
                    _ => {}
                }
            }
            id += 1;
        }
    }
    send(lsp_server::Request::new(id.into(), "shutdown".into(), json!(null)).into());
    send(lsp_server::Notification::new("exit".into(), json!(null)).into());
    handle.join().unwrap().unwrap();
}
