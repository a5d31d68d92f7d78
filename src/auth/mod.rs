//! Who may do what: credentials (bearer tokens and basic-auth users) bound to one tenant or to the admin
//! role, read from the credentials file (`auth_file`, format in `file.rs`) and reloaded when it changes.
//!
//! Owns the file's format, the digests of secrets, matching a request's `Authorization` value against
//! them in constant time, and the reload. Knows nothing of ports or requests beyond that one header
//! value: `api` asks it for a [`Grant`] and decides what the grant allows. Calls `ids`, `reload` and `telemetry`.

mod file;

use std::path::{Path, PathBuf};

use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ids::TenantId;
use crate::reload::Reloadable;

pub use file::{FileError, Table};

/// The `WWW-Authenticate` value of a 401: both schemes a client may answer with.
pub const CHALLENGE: &str = "Bearer realm=\"spanlake\", Basic realm=\"spanlake\"";

/// What a credential lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Write and read this tenant's spans, and nothing else.
    Tenant(TenantId),
    /// Any tenant (chosen with X-Scope-OrgID), and the operator's routes (`/flush`, `/metrics`).
    Admin,
}

/// Why a request's credentials were not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// HTTP 401 / gRPC UNAUTHENTICATED.
    #[error("this server requires credentials: send `Authorization: Bearer <token>` or basic auth")]
    Missing,
    /// HTTP 401 / gRPC UNAUTHENTICATED.
    #[error("the Authorization header is not `Bearer <token>` or `Basic <base64 of user:password>`")]
    Malformed,
    /// HTTP 401 / gRPC UNAUTHENTICATED: no credential has this secret (and user name).
    #[error("the credentials are not valid")]
    Unknown,
    /// HTTP 403 / gRPC PERMISSION_DENIED.
    #[error("these credentials are for tenant {granted}, not for X-Scope-OrgID {asked:?}")]
    OtherTenant { granted: TenantId, asked: String },
    /// HTTP 403 / gRPC PERMISSION_DENIED.
    #[error("this endpoint needs admin credentials")]
    NotAdmin,
}

impl AuthError {
    /// True for "who are you?" (401), false for "you may not" (403).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Self::Missing | Self::Malformed | Self::Unknown)
    }
}

/// The SHA-256 of a secret: what the file stores and what a presented secret is compared by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest([u8; 32]);

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(…)")
    }
}

impl Digest {
    /// The digest of a secret as presented.
    pub fn of(secret: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The digest as the file writes it.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// A new random secret (256 bits, URL-safe base64) for `spanlake auth token`.
pub fn new_token() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)?;
    Ok(format!("sl_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

impl Table {
    /// The grant of an `Authorization` value. Every entry is compared, in constant time and without
    /// stopping at a match, so the time taken says nothing about which secret (or how much of one) was
    /// right.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Grant, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let value = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?.trim();
        let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        let rest = rest.trim();
        let (user, secret) = if scheme.eq_ignore_ascii_case("bearer") {
            (None, rest.as_bytes().to_vec())
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| AuthError::Malformed)?;
            let colon = decoded.iter().position(|&b| b == b':').ok_or(AuthError::Malformed)?;
            let user = String::from_utf8(decoded[..colon].to_vec()).map_err(|_| AuthError::Malformed)?;
            (Some(user), decoded[colon + 1..].to_vec())
        } else {
            return Err(AuthError::Malformed);
        };
        if secret.is_empty() {
            return Err(AuthError::Unknown);
        }
        let presented = Digest::of(&secret);
        let mut found = None;
        for entry in &self.entries {
            let secret_matches = entry.digest.0.ct_eq(&presented.0);
            let user_matches = match &user {
                Some(user) => entry.name.as_bytes().ct_eq(user.as_bytes()),
                None => subtle::Choice::from(1),
            };
            if bool::from(secret_matches & user_matches) {
                found = Some(entry);
            }
        }
        found.map(|entry| entry.grant.clone()).ok_or(AuthError::Unknown)
    }
}

/// The credentials in force, shared by every port; the reloader swaps in a new table when the file
/// changes and checks in progress finish with the table they started with.
#[derive(Clone)]
pub struct Credentials {
    table: Reloadable<Table>,
    path: PathBuf,
    multitenancy: bool,
}

impl Credentials {
    /// Reads the file at start-up: a file that cannot be read or checked stops the start.
    pub fn load(path: &Path, multitenancy: bool) -> Result<Self, FileError> {
        let table = Table::load(path, multitenancy)?;
        if table.is_empty() {
            tracing::warn!(path = %path.display(), "the credentials file holds no credential: every request is refused");
        }
        tracing::info!(credentials = table.len(), "auth on: requests need credentials");
        Ok(Self { table: Reloadable::new(table), path: path.to_owned(), multitenancy })
    }

    /// The grant of an `Authorization` value under the table in force.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Grant, AuthError> {
        self.table.get().check(authorization)
    }

    /// Re-reads the file when it changes, until `stop`: a changed file that checks out replaces the
    /// table, one that does not is logged and counted and the table in force stays.
    pub fn spawn_reloader(&self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let (path, multitenancy) = (self.path.clone(), self.multitenancy);
        let load = move || Table::load(&path, multitenancy);
        crate::reload::spawn_watch(
            self.table.clone(),
            vec![self.path.clone()],
            "credentials file",
            crate::telemetry::AUTH_RELOADS,
            load,
            stop,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let text = format!(
            "credentials:\n  - {{name: writer, tenant: team-a, sha256: {}}}\n  - {{name: ops, admin: true, sha256: {}}}\n",
            Digest::of(b"token-a").to_hex(),
            Digest::of(b"token-admin").to_hex(),
        );
        Table::parse(&text, true).unwrap()
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn bearer_tokens_and_basic_users_map_to_their_grants() {
        let table = table();
        let team_a = Grant::Tenant(TenantId::new("team-a").unwrap());
        assert_eq!(table.check(Some(b"Bearer token-a")), Ok(team_a.clone()));
        assert_eq!(table.check(Some(b"bearer  token-a ")), Ok(team_a.clone()));
        assert_eq!(table.check(Some(b"Bearer token-admin")), Ok(Grant::Admin));
        assert_eq!(table.check(Some(basic("writer", "token-a").as_bytes())), Ok(team_a));
        assert_eq!(table.check(Some(basic("ops", "token-admin").as_bytes())), Ok(Grant::Admin));
    }

    #[test]
    fn wrong_missing_and_malformed_credentials_are_refused() {
        let table = table();
        assert_eq!(table.check(None), Err(AuthError::Missing));
        assert_eq!(table.check(Some(b"Bearer token-b")), Err(AuthError::Unknown));
        assert_eq!(table.check(Some(b"Bearer ")), Err(AuthError::Malformed));
        // The right secret under another entry's name is not that entry.
        assert_eq!(table.check(Some(basic("ops", "token-a").as_bytes())), Err(AuthError::Unknown));
        assert_eq!(table.check(Some(basic("writer", "").as_bytes())), Err(AuthError::Unknown));
        assert_eq!(table.check(Some(b"Basic !!!")), Err(AuthError::Malformed));
        assert_eq!(table.check(Some(b"Digest x")), Err(AuthError::Malformed));
        assert_eq!(table.check(Some(b"token-a")), Err(AuthError::Malformed));
        assert_eq!(table.check(Some(&[0xff, 0x20, 0x41])), Err(AuthError::Malformed));
    }

    #[test]
    fn new_tokens_differ_and_digest_like_the_file_expects() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.len() > 40, "{a}");
        let digest = Digest::of(a.as_bytes()).to_hex();
        assert_eq!(Digest::from_hex(&digest), Some(Digest::of(a.as_bytes())));
        // The SHA-256 of "test", as `sha256sum` prints it.
        assert_eq!(Digest::of(b"test").to_hex(), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    }
}
