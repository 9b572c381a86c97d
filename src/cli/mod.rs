//! The command line: arguments in, one command run, an exit code out
//! (0 success, 1 runtime failure, 2 bad input).
//!
//! # Layout
//! One module per command: [`init`], [`check`], [`build`], [`run`].

pub mod build;
pub mod check;
pub mod init;
pub mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, Site};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Publish articles as RSS, Atom and JSON feeds and as email digests."
)]
pub struct Cli {
    /// The publication folder (holding herald.toml).
    #[arg(long, global = true, env = "HERALD_SITE", default_value = ".")]
    pub site: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new publication folder.
    Init {
        /// Where to create it (must not already hold a herald.toml).
        dir: PathBuf,
    },
    /// Validate configuration, articles and templates; exit 0 only if all is clean.
    Check,
    /// Read the articles and write the feeds.
    Build,
    /// The daemon: watch articles, rebuild feeds, serve HTTP.
    Run,
}

/// Exit codes (DESIGN §7).
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

/// A failure caused by what the user gave us (exit code 2), as opposed to the world.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() || e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init { dir } => init::run(&dir),
        Command::Check => check::run(&*open(&cli.site)?),
        Command::Build => runtime()?.block_on(build::run(open(&cli.site)?)),
        Command::Run => runtime()?.block_on(run::run(open(&cli.site)?)),
    }
}

fn open(dir: &std::path::Path) -> anyhow::Result<Arc<Site>> {
    Ok(Arc::new(Site::open(dir)?))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HERALD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lettre=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
