//! Run reports: `report.html` rendered in headless Chromium (screenshots
//! kept in `target/test-output/report/`), TensorBoard event files read back
//! by the `tensorboard` Python package, sweep and cross-validation reports,
//! and `nnc report`.
//!
//! Chromium (`/usr/bin/chromium`, Debian's `chromium`) and a Python with
//! `tensorboard` (`target/tb-venv`, or `NNC_TEST_PYTHON`) are installed by
//! `.ci/run`; without them these tests fail and say so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{nnc, root};
use serde_json::Value;

/// A fresh scratch directory.
fn scratch(name: &str) -> PathBuf {
    crate::common::scratch("report", name)
}

/// Where screenshots are kept.
fn output_dir() -> PathBuf {
    let dir = root().join("target/test-output/report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var_os("NNC_CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to render the reports: install the Debian package \
             `chromium` (`bash .ci/run` does), or point NNC_CHROMIUM at a Chromium binary"
            )
        })
}

/// What the browser made of a page.
struct Rendered {
    dom: String,
    /// Console messages Chromium logged while loading the page.
    console: Vec<String>,
}

/// Loads `page` in headless Chromium: dumps the DOM after the scripts ran
/// (with the console logged) and takes a screenshot into `png`.
fn render(page: &Path, png: &Path, height: u32) -> Rendered {
    let profile = scratch(&format!("chromium-{}", png.file_stem().unwrap().to_string_lossy()));
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--force-device-scale-factor=1",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {stderr}");
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let png_size = std::fs::metadata(png).map_or(0, |m| m.len());
    assert!(png_size > 10_000, "screenshot {} is {png_size} bytes", png.display());
    Rendered {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        console,
    }
}

/// The value of `attribute` in the first tag that has `marker` in it.
fn attribute(dom: &str, marker: &str, attribute: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let key = format!(" {attribute}=\"");
    let from = tag.find(&key)? + key.len();
    Some(tag[from..].split('"').next()?.to_string())
}

/// The page loaded with no console message and no script error, its
/// script ran, and each chart (by id) has the expected number of curves,
/// as the browser's DOM holds them.
fn assert_rendered(rendered: &Rendered, charts: &[(&str, usize)]) {
    let dom = &rendered.dom;
    assert!(rendered.console.is_empty(), "console messages: {:#?}", rendered.console);
    assert_eq!(
        attribute(dom, "<body", "data-ready").as_deref(),
        Some("yes"),
        "the page's script did not run"
    );
    assert_eq!(attribute(dom, "<body", "data-errors").as_deref(), Some("0"));
    assert!(dom.contains("<pre id=\"errors\"></pre>"), "errors shown on the page");
    assert_eq!(
        attribute(dom, "<body", "data-charts"),
        Some(charts.len().to_string()),
        "number of charts"
    );
    for (id, series) in charts {
        let marker = format!("id=\"chart-{id}\"");
        assert_eq!(
            attribute(dom, &marker, "data-drawn-series"),
            Some(series.to_string()),
            "curves in chart `{id}`"
        );
    }
}

/// The page holds nothing that loads from elsewhere.
fn assert_self_contained(html: &str) {
    let without_namespace = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for needle in ["http://", "https://", " src=", "<link", "@import", "url("] {
        assert!(!without_namespace.contains(needle), "the report refers to `{needle}`");
    }
}

fn read_events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_run_report_renders_with_every_chart() {
    let out = scratch("mlp");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "300",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_self_contained(&html);
    let rendered = render(&page, &output_dir().join("digits_mlp.png"), 1900);
    // loss (train and validation), accuracy, learning rate, speed.
    assert_rendered(&rendered, &[("loss", 2), ("accuracy", 1), ("lr", 1), ("speed", 1)]);
    let dom = &rendered.dom;

    // The final table shows the summary's numbers.
    let events = read_events(&out);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    let accuracy = summary["metrics"]["accuracy"].as_f64().unwrap();
    let loss = summary["train_loss"].as_f64().unwrap();
    assert!(
        dom.contains(&format!("<td class=\"num\">{accuracy:.4}</td>")),
        "accuracy {accuracy:.4}"
    );
    assert!(
        dom.contains(&format!("<td class=\"num\">{loss:.4}</td>")),
        "train loss {loss:.4}"
    );
    assert!(dom.contains("finished: 300 steps"));

    // What ran: the source with its hash, the command, the host.
    let text = std::fs::read_to_string(root().join("examples/digits_mlp.nn")).unwrap();
    assert!(dom.contains(&nnc::runtime::checkpoint::hash_text(&text)));
    assert!(dom.contains("<span>model mlp_classifier(x: f32[B, 64]) -&gt; f32[B, CLASSES] {</span>"));
    assert!(dom.contains("nnc run examples/digits_mlp.nn --steps 300 --quiet --out "));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(dom.contains(&format!("<span class=\"host\">{}</span>", host.trim())));

    // The model: parameters by layer, FLOPs of a step, the memory plan.
    assert!(dom.contains("<td><code>mlp_classifier.linear</code></td><td>w <code>f32[64, 128]</code>, b <code>f32[128]</code></td><td class=\"num\">8,320</td>"));
    assert!(dom.contains("<dd>9,610</dd>"));
    assert!(dom.contains("MFLOP at batch 64"));
    assert!(dom.contains("arena peak "));
    std::fs::remove_dir_all(out).unwrap();
}

/// Each example trains a few steps (the sequence models at a small width,
/// so generation and decoding stay quick) and its report renders cleanly;
/// the screenshots stay in the output directory.
#[test]
fn every_example_report_renders() {
    let small: &[(&str, &[&str])] = &[
        ("gpt", &["D=32", "LAYERS=1", "T=16"]),
        ("bert_mlm", &["D=32", "LAYERS=1", "T=16"]),
        ("bert_nsp", &["D=32", "LAYERS=1", "T=16"]),
        ("transformer", &["D=16", "LAYERS=1"]),
        ("scheduled_sampling", &["D=16"]),
        ("char_lstm", &["H=32", "E=16", "T=8"]),
        ("bert_classify", &["D=32", "LAYERS=1", "T=32"]),
        ("bert_tag", &["D=32", "LAYERS=1", "T=32"]),
        ("bert_pair", &["D=32", "LAYERS=1", "T=32"]),
        ("bert_qa", &["D=32", "LAYERS=1", "T=32"]),
    ];
    // The fine-tuning examples start from a (briefly) pre-trained encoder
    // of their size, and train twice: their first run's report is checked.
    let pretrained = scratch("example-pretrained");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/bert_mlm.nn",
        "--set",
        "D=32",
        "--set",
        "LAYERS=1",
        "--set",
        "T=32",
        "--steps",
        "2",
        "--quiet",
        "--out",
        pretrained.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let checkpoint = pretrained.join("checkpoint.safetensors");
    for example in crate::common::examples() {
        let name = example.file_stem().unwrap().to_string_lossy().into_owned();
        let base = scratch(&format!("example-{name}"));
        let fine_tuned = name.starts_with("bert_") && !["bert_mlm", "bert_nsp"].contains(&name.as_str());
        let out = if fine_tuned {
            base.join("finetuned")
        } else {
            base.clone()
        };
        let mut args = vec![
            "run".to_string(),
            example.display().to_string(),
            "--steps".into(),
            "4".into(),
            "--quiet".into(),
            "--out".into(),
            base.display().to_string(),
        ];
        if fine_tuned {
            args.extend(["--init-from".to_string(), checkpoint.display().to_string()]);
        }
        for (_, settings) in small.iter().filter(|(n, _)| *n == name) {
            for setting in *settings {
                args.extend(["--set".to_string(), setting.to_string()]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = nnc(&args);
        assert_eq!(code, 0, "{name}: {stderr}");
        // A sweep's directory: the report of its first variant (or fold).
        let run = first_run(&out).unwrap_or_else(|| panic!("{name}: no run in {}", out.display()));
        let page = run.join("report.html");
        assert_self_contained(&std::fs::read_to_string(&page).unwrap());
        let rendered = render(&page, &output_dir().join(format!("example-{name}.png")), 1900);
        let record = nnc::runtime::report::record::load(&run).unwrap();
        let mut charts: Vec<(String, usize)> = record
            .metric_names()
            .into_iter()
            .map(|m| {
                let curves = if m == "loss" { 2 } else { 1 };
                (m, curves)
            })
            .collect();
        assert_eq!(charts[0], ("loss".to_string(), 2), "{name}");
        charts.push(("lr".into(), 1));
        charts.push(("speed".into(), 1));
        let charts: Vec<(&str, usize)> = charts.iter().map(|(m, n)| (m.as_str(), *n)).collect();
        assert_rendered(&rendered, &charts);
        std::fs::remove_dir_all(base).unwrap();
    }
    std::fs::remove_dir_all(pretrained).unwrap();
}

/// `dir` if it is a run directory, else the first run found in its
/// subdirectories (sorted by name, depth first).
fn first_run(dir: &Path) -> Option<PathBuf> {
    if nnc::runtime::report::record::is_run(dir) {
        return Some(dir.to_path_buf());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_dir())
        .collect();
    children.sort();
    children.iter().find_map(|child| first_run(child))
}

/// A Python with the `tensorboard` package.
fn python() -> PathBuf {
    let candidates = [
        std::env::var_os("NNC_TEST_PYTHON").map(PathBuf::from),
        Some(root().join("target/tb-venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    for candidate in candidates.into_iter().flatten() {
        let ok = Command::new(&candidate)
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate;
        }
    }
    panic!(
        "the `tensorboard` Python package is needed to read the event files back: `bash .ci/run` \
         installs it (python3 -m venv target/tb-venv && target/tb-venv/bin/pip install tensorboard), \
         or point NNC_TEST_PYTHON at a Python that has it"
    )
}

const READ_EVENTS: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
"#;

#[test]
fn tensorboard_reads_the_same_scalars_as_metrics_jsonl() {
    let out = scratch("tensorboard");
    let (code, _, stderr) = nnc(&[
        "run",
        "examples/digits_mlp.nn",
        "--steps",
        "200",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    let output = Command::new(python())
        .args(["-c", READ_EVENTS, out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let read: BTreeMap<String, Vec<(u64, f64)>> = serde_json::from_slice(&output.stdout).unwrap();

    // The scalars of metrics.jsonl: step events and evaluations.
    let mut expected: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for event in read_events(&out) {
        let step = event["step"].as_u64();
        match event["event"].as_str().unwrap() {
            "step" => {
                for key in ["loss", "lr", "steps_per_s"] {
                    let value = event[key].as_f64().unwrap();
                    expected
                        .entry(format!("train/{key}"))
                        .or_default()
                        .push((step.unwrap(), value));
                }
            }
            "eval" => {
                for (name, value) in event["metrics"].as_object().unwrap() {
                    let entry = expected.entry(format!("validation/{name}")).or_default();
                    entry.push((step.unwrap(), value.as_f64().unwrap()));
                }
            }
            _ => {}
        }
    }
    let tags: Vec<&String> = expected.keys().collect();
    assert_eq!(
        tags,
        [
            "train/loss",
            "train/lr",
            "train/steps_per_s",
            "validation/accuracy",
            "validation/loss"
        ]
    );
    assert_eq!(expected["train/loss"].len(), 20);
    assert_eq!(expected["validation/loss"].len(), 2);
    assert_eq!(read.keys().collect::<Vec<_>>(), tags);
    for (tag, points) in &expected {
        let got = &read[tag];
        assert_eq!(got.len(), points.len(), "{tag}");
        for ((step, value), (read_step, read_value)) in points.iter().zip(got) {
            assert_eq!(step, read_step, "{tag}");
            // Event files hold 32-bit floats (and JSON carries them as
            // the shortest decimal, read back to within an f64 ulp).
            assert_eq!(*read_value as f32, *value as f32, "{tag} at step {step}");
        }
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn a_sweep_report_has_a_curve_per_variant() {
    let out = scratch("sweep");
    let (code, _, stderr) = nnc(&[
        "run",
        "tests/data/ok/sweep.nn",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let variants = ["H=8,lr=0.001", "H=8,lr=0.01", "H=32,lr=0.001", "H=32,lr=0.01"];
    for variant in variants {
        assert!(out.join(variant).join("report.html").exists(), "{variant}");
    }
    let page = out.join("report.html");
    assert_self_contained(&std::fs::read_to_string(&page).unwrap());
    let rendered = render(&page, &output_dir().join("sweep.png"), 1700);
    assert_rendered(&rendered, &[("train-loss", 4), ("val-loss", 4), ("val-accuracy", 4)]);
    let dom = &rendered.dom;
    assert!(dom.contains("sweep.nn: sweep over 4 variants"));
    // Ranked: the best variant (as the sweep names it) first.
    let best = dom.find("<tr class=\"best\">").expect("a best row");
    let first_row = &dom[best..best + dom[best..].find("</tr>").unwrap()];
    assert!(first_row.contains(">H=32,lr=0.01</a>"), "{first_row}");
    for variant in variants {
        assert!(dom.contains(&format!("href=\"{variant}/report.html\"")), "{variant}");
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn a_cross_validation_report_has_a_curve_per_fold_and_their_mean() {
    let out = scratch("folds");
    let (code, stdout, stderr) = nnc(&[
        "run",
        "tests/data/ok/cross_validation.nn",
        "--steps",
        "40",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let page = out.join("report.html");
    let rendered = render(&page, &output_dir().join("folds.png"), 1500);
    assert_rendered(&rendered, &[("train-loss", 3), ("val-loss", 3), ("val-accuracy", 3)]);
    let dom = &rendered.dom;
    assert!(dom.contains("cross_validation.nn: cross-validation over 3 folds"));
    // The mean row agrees with the summary's mean.
    let mean = dom.find("<b>mean</b>").expect("a mean row");
    let row = &dom[mean..mean + dom[mean..].find("</tr>").unwrap()];
    let accuracy = summary["metrics"]["accuracy"].as_f64().unwrap();
    assert!(row.contains(&format!(">{accuracy:.4}<")), "{row} vs {accuracy:.4}");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn nnc_report_compares_two_runs() {
    let base = scratch("compare");
    for (name, lr) in [("fast", "1e-2"), ("slow", "1e-3")] {
        let dir = base.join(name);
        let (code, _, stderr) = nnc(&[
            "run",
            "examples/views_linear.nn",
            "--steps",
            "300",
            "--lr",
            lr,
            "--quiet",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
    }
    let page = base.join("compare.html");
    let (code, stdout, stderr) = nnc(&[
        "report",
        base.join("fast").to_str().unwrap(),
        base.join("slow").to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, format!("wrote {} (2 runs)\n", page.display()));
    assert_self_contained(&std::fs::read_to_string(&page).unwrap());
    let rendered = render(&page, &output_dir().join("compare.png"), 1700);
    assert_rendered(&rendered, &[("train-loss", 2), ("val-loss", 2), ("val-mae", 2)]);
    assert!(rendered.dom.contains("comparison of 2 runs"));
    assert!(rendered.dom.contains(">fast</a>") && rendered.dom.contains(">slow</a>"));
    assert!(rendered.dom.contains("--lr 1e-2") && rendered.dom.contains("--lr 1e-3"));

    // The sweep-style directory holding both runs gives the same two.
    let (code, stdout, stderr) = nnc(&["report", base.to_str().unwrap(), "--out", page.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("(2 runs)\n"), "{stdout}");
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn nnc_report_refuses_what_is_not_a_run() {
    let out = scratch("refuse");
    std::fs::create_dir_all(&out).unwrap();
    let page = out.join("x.html");
    let (code, _, stderr) = nnc(&["report", "no/such/run", "--out", page.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(stderr, "error: `no/such/run` does not exist\n");
    let (code, _, stderr) = nnc(&["report", "examples", "--out", page.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: `examples` is not a run directory: it has no metrics.jsonl"),
        "{stderr}"
    );
    let (code, _, stderr) = nnc(&["report", "examples/digits_mlp.nn", "--out", page.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is not a run directory (it is a file)"), "{stderr}");
    assert!(!page.exists());
    std::fs::remove_dir_all(out).unwrap();
}
