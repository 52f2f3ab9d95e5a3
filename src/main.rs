fn main() -> std::process::ExitCode {
    nnc::cli::main()
}
