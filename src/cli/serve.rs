//! `spanlake serve`: the server, with every setting as a flag (declared in `spanlake::config`).

use std::path::PathBuf;

use clap::Args;
use spanlake::config::{AllSettings, ServeConfig, SettingFlags};

use super::CliError;

/// Flags of `serve`. Every one can also come from its environment variable or from the `--config`
/// file; flags and environment win over the file, the file over the defaults.
#[derive(Args)]
pub struct ServeArgs {
    /// YAML settings file; every key is optional (see deploy/spanlake.yaml). Unknown keys are an error.
    #[arg(long, env = "SPANLAKE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingFlags<AllSettings>,
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let config = ServeConfig::layered(args.config.as_deref(), args.settings.given)?;
    Ok(spanlake::api::serve(config).await?)
}
