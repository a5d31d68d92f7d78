//! Parsing a storage URL into a configured `object_store` backend.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use super::StorageError;

/// What is wrong with a storage URL: the cause of [`StorageError::InvalidUrl`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    #[error(transparent)]
    Parse(#[from] url::ParseError),
    #[error("file URLs need an absolute path")]
    RelativeFilePath,
    #[error("no bucket")]
    NoBucket,
    #[error("unsupported scheme {0:?}; use file://, s3:// or memory://")]
    UnsupportedScheme(String),
    #[error("not an absolute path")]
    NotAbsolute,
    #[error("unknown S3 option {key:?}")]
    UnknownS3Option { key: String, source: object_store::Error },
    #[error("a custom store cannot be rebuilt from its description")]
    CustomStore,
}

/// Where blocks are stored, as named by `--storage`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageLocation {
    /// A local folder: the embedded default.
    LocalFolder(PathBuf),
    /// An S3 bucket (AWS, MinIO or any S3-compatible server) and a key prefix inside it.
    S3 { bucket: String, prefix: String },
    /// A process-local in-memory store, for unit tests.
    Memory,
    /// A store handed in by code (tests wrapping a real store with faults).
    Custom(String),
}

impl StorageLocation {
    /// Parses `file:///abs/path`, `s3://bucket[/prefix]` or `memory://`.
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        let invalid = |source: UrlProblem| StorageError::InvalidUrl { url: url.to_owned(), source };
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.into()))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|()| invalid(UrlProblem::RelativeFilePath))?;
                Ok(Self::LocalFolder(path))
            }
            "s3" | "s3a" => {
                let bucket =
                    parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| invalid(UrlProblem::NoBucket))?;
                let prefix = parsed.path().trim_matches('/').to_owned();
                Ok(Self::S3 { bucket: bucket.to_owned(), prefix })
            }
            "memory" => Ok(Self::Memory),
            other => Err(invalid(UrlProblem::UnsupportedScheme(other.to_owned()))),
        }
    }

    /// The URL of a local folder, for `--data-dir` defaults.
    pub fn local_folder_url(path: &std::path::Path) -> Result<String, StorageError> {
        let absolute = std::path::absolute(path)
            .map_err(|source| StorageError::LocalFolder { path: path.display().to_string(), source })?;
        url::Url::from_directory_path(&absolute).map(|u| u.to_string()).map_err(|()| StorageError::InvalidUrl {
            url: absolute.display().to_string(),
            source: UrlProblem::NotAbsolute,
        })
    }

    /// Builds the backend. `options` are `object_store` configuration keys (e.g. `aws_endpoint`,
    /// `aws_allow_http`) applied over the environment, for config files and tests.
    pub(super) fn build(&self, options: &[(String, String)]) -> Result<Arc<dyn ObjectStore>, StorageError> {
        match self {
            Self::LocalFolder(path) => {
                std::fs::create_dir_all(path)
                    .map_err(|source| StorageError::LocalFolder { path: path.display().to_string(), source })?;
                Ok(Arc::new(LocalFileSystem::new_with_prefix(path)?))
            }
            Self::S3 { bucket, prefix } => {
                // The S3-compatible servers we test against honour only these two modes for atomic
                // create-if-absent; both also work on AWS S3.
                let mut builder = AmazonS3Builder::from_env();
                for (key, value) in options {
                    let config_key: AmazonS3ConfigKey = key.parse().map_err(|source| StorageError::InvalidUrl {
                        url: format!("s3://{bucket}/{prefix}"),
                        source: UrlProblem::UnknownS3Option { key: key.clone(), source },
                    })?;
                    builder = builder.with_config(config_key, value);
                }
                let s3 = builder
                    .with_bucket_name(bucket)
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
                    .build()?;
                if prefix.is_empty() { Ok(Arc::new(s3)) } else { Ok(Arc::new(PrefixStore::new(s3, prefix.as_str()))) }
            }
            Self::Memory => Ok(Arc::new(InMemory::new())),
            Self::Custom(description) => {
                Err(StorageError::InvalidUrl { url: description.clone(), source: UrlProblem::CustomStore })
            }
        }
    }
}

impl fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LocalFolder(path) => write!(f, "local folder {}", path.display()),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Memory => f.write_str("memory"),
            Self::Custom(description) => f.write_str(description),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_schemes() {
        assert_eq!(StorageLocation::parse("file:///tmp/x").unwrap(), StorageLocation::LocalFolder("/tmp/x".into()));
        assert_eq!(
            StorageLocation::parse("s3://bucket/a/b/").unwrap(),
            StorageLocation::S3 { bucket: "bucket".into(), prefix: "a/b".into() }
        );
        assert_eq!(StorageLocation::parse("memory://").unwrap(), StorageLocation::Memory);
    }

    #[test]
    fn refuses_unknown_schemes_and_relative_paths_with_the_reason() {
        let error = StorageLocation::parse("ftp://host/x").unwrap_err();
        assert!(
            matches!(&error, StorageError::InvalidUrl { source: UrlProblem::UnsupportedScheme(scheme), .. } if scheme == "ftp"),
            "{error:?}"
        );
        let error = error.to_string();
        assert!(error.contains("unsupported scheme \"ftp\""), "{error}");
        let unparsable = StorageLocation::parse("not a url");
        assert!(matches!(unparsable, Err(StorageError::InvalidUrl { source: UrlProblem::Parse(_), .. })));
        let no_bucket = StorageLocation::parse("s3:///nobucket");
        assert!(matches!(no_bucket, Err(StorageError::InvalidUrl { source: UrlProblem::NoBucket, .. })));
    }
}
