//! `switchboard bench`, `bench-list`, `loadgen` and `demo` are programs of their own
//! (`switchboard-tools`, the `tools/` crate), so that the service's library and binaries carry
//! none of their code. These subcommands run that program, found beside this one (both come out
//! of the same build) or on PATH, with the same arguments.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};

/// Everything after the subcommand, passed on as it is (`--help` included).
#[derive(Debug, clap::Args)]
pub struct Forwarded {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    args: Vec<String>,
}

fn tools_exe() -> PathBuf {
    let name = format!("switchboard-tools{}", std::env::consts::EXE_SUFFIX);
    match std::env::current_exe() {
        Ok(me) if me.with_file_name(&name).exists() => me.with_file_name(&name),
        _ => PathBuf::from(name),
    }
}

/// Runs `switchboard-tools <command> <args>` to completion; fails when it fails.
pub fn run(command: &str, config: Option<&Path>, forwarded: Forwarded) -> Result<()> {
    let exe = tools_exe();
    let mut cmd = std::process::Command::new(&exe);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let status = cmd.arg(command).args(&forwarded.args).status().with_context(|| {
        format!(
            "`switchboard {command}` runs {}, which is not beside this program nor on PATH; \
             build it with `cargo build --release -p switchboard-tools` (a plain `cargo build` \
             in the repository builds it too)",
            exe.display()
        )
    })?;
    if !status.success() {
        bail!("switchboard-tools {command} failed ({status})");
    }
    Ok(())
}
