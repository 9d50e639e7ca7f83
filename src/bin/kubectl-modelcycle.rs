//! `kubectl-modelcycle`: on the PATH, kubectl runs it as `kubectl modelcycle`.

fn main() -> std::process::ExitCode {
    modelcycle::plugin::main()
}
