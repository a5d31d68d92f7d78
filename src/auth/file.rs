//! The credentials file (`auth_file`): its YAML format, its checks, and the table it becomes.
//!
//! ```yaml
//! credentials:
//!   - name: checkout          # the basic-auth user name, and what the log calls this credential
//!     tenant: team-a          # whose spans it writes and reads
//!     sha256: 9f86d0…         # hex SHA-256 of the secret (`spanlake auth token` makes both)
//!   - name: ops
//!     admin: true             # any tenant (by X-Scope-OrgID), /flush, /metrics
//!     sha256: …
//! ```
//!
//! Only digests are stored, so the file alone lets nobody in. Secrets are meant to be the random tokens
//! `spanlake auth token` prints (256 bits): a fast digest is then as strong as a slow password hash, and a
//! check costs microseconds on the ingest path.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ids::TenantId;

use super::{Digest, Grant};

/// Why a credentials file was not taken (at start-up the server refuses to start; on a reload it keeps
/// the table it has).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the credentials file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the credentials file is not the expected YAML (a `credentials:` list)")]
    Syntax(#[source] serde_yaml_ng::Error),
    #[error("credential {index} ({name:?}): {reason}")]
    Entry { index: usize, name: String, reason: String },
}

/// One credential as written in the file, before its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    admin: bool,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    credentials: Vec<RawEntry>,
}

/// One checked credential.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) grant: Grant,
    pub(super) digest: Digest,
}

/// Every credential of one version of the file.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub(super) entries: Vec<Entry>,
}

impl Table {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path, multitenancy: bool) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, multitenancy)
    }

    /// Checks every entry: a name usable as a basic-auth user, exactly one grant, a 64-digit hex digest
    /// used by no other entry. With multitenancy off every span is `single-tenant`'s, so an entry may leave
    /// its tenant out (or name `single-tenant`) but may not name another: that would promise a separation
    /// the server does not make.
    pub fn parse(text: &str, multitenancy: bool) -> Result<Self, FileError> {
        let raw: RawFile = if text.trim().is_empty() {
            RawFile { credentials: Vec::new() }
        } else {
            serde_yaml_ng::from_str(text).map_err(FileError::Syntax)?
        };
        let mut entries: Vec<Entry> = Vec::with_capacity(raw.credentials.len());
        for (index, entry) in raw.credentials.into_iter().enumerate() {
            let refuse = |reason: String| FileError::Entry { index, name: entry.name.clone(), reason };
            if entry.name.is_empty() || entry.name.contains(':') || entry.name.chars().any(char::is_control) {
                return Err(refuse("a name is one or more characters without `:` (it is the basic-auth user)".into()));
            }
            let grant = match (entry.admin, entry.tenant.as_deref()) {
                (true, Some(_)) => {
                    return Err(refuse("names a tenant and admin: true; an admin picks any tenant".into()));
                }
                (true, None) => Grant::Admin,
                (false, None) if multitenancy => {
                    return Err(refuse("names no tenant (tenant: …) and is not admin (admin: true)".into()));
                }
                (false, None) => Grant::Tenant(TenantId::single_tenant()),
                (false, Some(name)) => {
                    let tenant = TenantId::new(name).map_err(|e| refuse(format!("tenant: {e}")))?;
                    if !multitenancy && tenant != TenantId::single_tenant() {
                        return Err(refuse(format!(
                            "names tenant {tenant}, but multitenancy is off and every span belongs to single-tenant; \
                             turn multitenancy on or leave the tenant out"
                        )));
                    }
                    Grant::Tenant(tenant)
                }
            };
            let digest = Digest::from_hex(&entry.sha256).ok_or_else(|| {
                refuse("sha256 is not 64 hexadecimal digits (`spanlake auth hash` prints one)".into())
            })?;
            if entries.iter().any(|earlier| earlier.name == entry.name) {
                return Err(refuse("the name is used twice; basic auth could not tell the two apart".into()));
            }
            if entries.iter().any(|earlier| earlier.digest == digest) {
                return Err(refuse("the same secret is used by another entry; give each its own".into()));
            }
            entries.push(Entry { name: entry.name, grant, digest });
        }
        Ok(Self { entries })
    }

    /// Number of credentials.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no credential lets anyone in (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const OTHER: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    #[test]
    fn entries_become_grants() {
        let text = format!(
            "credentials:\n  - {{name: a, tenant: team-a, sha256: {DIGEST}}}\n  - {{name: ops, admin: true, sha256: {OTHER}}}\n"
        );
        let table = Table::parse(&text, true).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.entries[0].grant, Grant::Tenant(TenantId::new("team-a").unwrap()));
        assert_eq!(table.entries[1].grant, Grant::Admin);
    }

    #[test]
    fn bad_entries_are_refused_with_their_index_and_reason() {
        let cases = [
            (format!("credentials:\n  - {{name: a, sha256: {DIGEST}}}\n"), true, "names no tenant"),
            (format!("credentials:\n  - {{name: a, tenant: x, admin: true, sha256: {DIGEST}}}\n"), true, "admin"),
            ("credentials:\n  - {name: a, tenant: x, sha256: abc}\n".into(), true, "64 hexadecimal"),
            (format!("credentials:\n  - {{name: 'a:b', tenant: x, sha256: {DIGEST}}}\n"), true, "without `:`"),
            (format!("credentials:\n  - {{name: a, tenant: 'x/y', sha256: {DIGEST}}}\n"), true, "tenant:"),
            (format!("credentials:\n  - {{name: a, tenant: x, sha256: {DIGEST}}}\n"), false, "multitenancy is off"),
            (
                format!(
                    "credentials:\n  - {{name: a, tenant: x, sha256: {DIGEST}}}\n  - {{name: b, tenant: y, sha256: {DIGEST}}}\n"
                ),
                true,
                "same secret",
            ),
            (
                format!(
                    "credentials:\n  - {{name: a, tenant: x, sha256: {DIGEST}}}\n  - {{name: a, tenant: y, sha256: {OTHER}}}\n"
                ),
                true,
                "used twice",
            ),
        ];
        for (text, multitenancy, expected) in cases {
            let error = Table::parse(&text, multitenancy).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = Table::parse("credentials:\n  - {name: a, tenant: x, sha256: x, extra: 1}\n", true).unwrap_err();
        assert!(matches!(error, FileError::Syntax(_)), "{error}");
    }

    #[test]
    fn single_tenant_entries_may_leave_the_tenant_out() {
        let text = format!("credentials:\n  - {{name: a, sha256: {DIGEST}}}\n");
        let table = Table::parse(&text, false).unwrap();
        assert_eq!(table.entries[0].grant, Grant::Tenant(TenantId::single_tenant()));
        assert!(Table::parse("", true).unwrap().is_empty());
    }
}
