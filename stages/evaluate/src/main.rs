fn main() -> std::process::ExitCode {
    evaluate::main()
}
