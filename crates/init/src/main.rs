//! `zeitwork-init`: the guest's PID 1 (see the `zeitwork_init` library).

fn main() -> std::process::ExitCode {
    zeitwork_init::main()
}
