//! The `careline` binary: see [`careline::cli`].

fn main() -> std::process::ExitCode {
    careline::cli::main()
}
