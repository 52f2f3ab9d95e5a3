#[test]
fn scratch() {
    let src = std::fs::read_to_string("/tmp/t.nn").unwrap();
    let (_file, diags) = nnc::syntax::parse(0, &src);
    let mut sm = nnc::diagnostics::SourceMap::new();
    sm.add("t.nn", src.clone());
    println!("{}", sm.render(&diags, false));
}
