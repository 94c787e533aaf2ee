//! `fuxi-ofctl`: the ovs-ofctl-style CLI. The logic lives in `fuxi_controller::ofctl`.

use std::process::ExitCode;

use clap::Parser;
use fuxi_controller::ofctl::cmd::{Cli, CmdError, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(&cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CmdError::Differ) => ExitCode::from(2),
        Err(CmdError::Quiet) => ExitCode::from(1),
        Err(e @ CmdError::Conn(fuxi_controller::ofctl::conn::ConnError::Refused { .. })) => {
            // The switch's ERROR, printed as ovs-ofctl prints it.
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("fuxi-ofctl: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
