//! `spanlake auth`: makes credentials for the `auth_file` (a new token with its file entry, or the digest
//! of a secret chosen elsewhere). The server never needs the secrets themselves, only their digests.

use std::io::{BufRead, Write};

use clap::{Args, Subcommand};
use spanlake::auth::{Digest, new_token};
use spanlake::ids::TenantId;

use super::CliError;

/// Flags of `auth`.
#[derive(Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Make a new random token and print it with the entry to add to the credentials file.
    Token(TokenArgs),
    /// Read a secret from standard input (its first line) and print its SHA-256 as the file stores it.
    Hash,
}

#[derive(Args)]
struct TokenArgs {
    /// Name of the credential: the user name for basic auth (Grafana), and what the log calls it.
    #[arg(long)]
    name: String,
    /// Tenant whose spans the token writes and reads.
    #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
    tenant: Option<TenantId>,
    /// An admin token: any tenant (by X-Scope-OrgID), /flush and /metrics.
    #[arg(long)]
    admin: bool,
}

/// Runs `auth`.
pub fn run(args: AuthArgs) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match args.command {
        AuthCommand::Token(token) => {
            let secret = new_token().map_err(|_| CliError::Random)?;
            let digest = Digest::of(secret.as_bytes()).to_hex();
            let grant = match token.tenant {
                Some(tenant) => format!("tenant: {}", yaml_quoted(tenant.as_str())),
                None => "admin: true".to_owned(),
            };
            writeln!(out, "token: {secret}")?;
            writeln!(out, "# Give the token to its client; it is not stored anywhere. Add under `credentials:`:")?;
            writeln!(out, "  - name: {}\n    {grant}\n    sha256: {digest}", yaml_quoted(&token.name))?;
        }
        AuthCommand::Hash => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let secret = line.trim_end_matches(['\r', '\n']);
            writeln!(out, "{}", Digest::of(secret.as_bytes()).to_hex())?;
        }
    }
    Ok(())
}

/// A YAML scalar in single quotes, so names with `*`, `!` or `'` read back as written.
fn yaml_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
