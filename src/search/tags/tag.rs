//! A tag name as the values endpoints take it (`resource.service.name`, `span.http.method`, `.http.method`,
//! `http.method`, `name`, `status`, `span:kind`, `rootServiceName`, …) and what it reads: summary lists,
//! built-in values, or an SQL expression over `spans`.

pub use super::super::plan::sql_string as quote;
use crate::storage::block::TagScope;

/// What a tag name reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Tag {
    /// An attribute in one scope, or (`scope: None`, written `.x` or bare `x`) in the span or its resource.
    Attribute {
        scope: Option<TagScope>,
        key: String,
    },
    /// The span name.
    Name,
    /// `status`: the keywords `error ok unset`.
    Status,
    /// `kind`: the span kinds.
    Kind,
    StatusMessage,
    RootServiceName,
    RootName,
    InstrumentationName,
    InstrumentationVersion,
    EventName,
    /// An intrinsic with no enumerable values (`duration`, `span:id`, …): no values.
    Unlisted,
}

/// The span statuses, as Tempo lists them.
pub const STATUSES: [&str; 3] = ["error", "ok", "unset"];
/// The span kinds, as Tempo lists them.
pub const KINDS: [&str; 6] = ["unspecified", "internal", "server", "client", "producer", "consumer"];

impl Tag {
    /// Reads a tag name. Anything not an intrinsic or a scoped name is an attribute name, as Tempo v1 takes
    /// bare attribute names (`http.method`, `service.name`).
    pub fn parse(name: &str) -> Tag {
        match name {
            "name" | "span:name" => return Tag::Name,
            "status" | "span:status" | "status.code" => return Tag::Status,
            "kind" | "span:kind" => return Tag::Kind,
            "statusMessage" | "span:statusMessage" => return Tag::StatusMessage,
            "rootServiceName" | "trace:rootService" => return Tag::RootServiceName,
            "rootName" | "trace:rootName" => return Tag::RootName,
            "instrumentation:name" => return Tag::InstrumentationName,
            "instrumentation:version" => return Tag::InstrumentationVersion,
            "event:name" => return Tag::EventName,
            _ => {}
        }
        if name.contains(':') && !name.contains('.') {
            return Tag::Unlisted;
        }
        if matches!(
            name,
            "duration" | "traceDuration" | "childCount" | "nestedSetParent" | "nestedSetLeft" | "nestedSetRight"
        ) {
            return Tag::Unlisted;
        }
        if let Some(key) = name.strip_prefix('.') {
            return Tag::Attribute { scope: None, key: key.to_owned() };
        }
        for scope in TagScope::ALL {
            if let Some(key) = name.strip_prefix(scope.name()).and_then(|rest| rest.strip_prefix('.'))
                && !key.is_empty()
            {
                return Tag::Attribute { scope: Some(scope), key: key.to_owned() };
            }
        }
        Tag::Attribute { scope: None, key: name.to_owned() }
    }

    /// The scopes an attribute tag reads (span and resource when unscoped); none for other tags.
    pub fn scopes(&self) -> Vec<TagScope> {
        match self {
            Tag::Attribute { scope: Some(scope), .. } => vec![*scope],
            Tag::Attribute { scope: None, .. } => vec![TagScope::Span, TagScope::Resource],
            _ => Vec::new(),
        }
    }

    /// `SELECT DISTINCT` text giving this tag's values per span (as `v`), with the condition `narrow`
    /// (SQL over `spans`, already including the time window). `None` when SQL cannot list them.
    pub fn values_sql(&self, narrow: &str, limit: usize) -> Option<String> {
        let one = |column: &str, extra: &str| {
            format!(
                "SELECT DISTINCT {column} AS v FROM spans WHERE {column} IS NOT NULL{extra} AND {narrow} \
                 ORDER BY v LIMIT {limit}"
            )
        };
        Some(match self {
            Tag::Attribute { scope: Some(TagScope::Span), key } => one(&format!("attributes[{}]", quote(key)), ""),
            Tag::Attribute { scope: Some(TagScope::Resource), key } => {
                one(&format!("resource_attributes[{}]", quote(key)), "")
            }
            Tag::Attribute { scope: None, key } => {
                let (span, resource) =
                    (format!("attributes[{}]", quote(key)), format!("resource_attributes[{}]", quote(key)));
                format!(
                    "SELECT DISTINCT v FROM (SELECT {span} AS v FROM spans WHERE {narrow} \
                     UNION ALL SELECT {resource} AS v FROM spans WHERE {narrow}) WHERE v IS NOT NULL \
                     ORDER BY v LIMIT {limit}"
                )
            }
            Tag::Attribute { scope: Some(TagScope::Event), key } => format!(
                "SELECT DISTINCT v FROM (SELECT get_field(unnest(events), 'attributes')[{}] AS v FROM spans \
                 WHERE {narrow}) WHERE v IS NOT NULL ORDER BY v LIMIT {limit}",
                quote(key)
            ),
            Tag::Attribute { scope: Some(TagScope::Link), key } => format!(
                "SELECT DISTINCT v FROM (SELECT get_field(unnest(links), 'attributes')[{}] AS v FROM spans \
                 WHERE {narrow}) WHERE v IS NOT NULL ORDER BY v LIMIT {limit}",
                quote(key)
            ),
            Tag::Name => one("name", ""),
            Tag::StatusMessage => one("status_message", " AND status_message <> ''"),
            Tag::RootServiceName => one("service_name", " AND parent_span_id IS NULL"),
            Tag::RootName => one("name", " AND parent_span_id IS NULL"),
            Tag::InstrumentationName => one("scope_name", " AND scope_name <> ''"),
            Tag::InstrumentationVersion => one("scope_version", " AND scope_version <> ''"),
            Tag::EventName => format!(
                "SELECT DISTINCT v FROM (SELECT get_field(unnest(events), 'name') AS v FROM spans WHERE {narrow}) \
                 WHERE v IS NOT NULL ORDER BY v LIMIT {limit}"
            ),
            // Scope attributes are not SQL columns; status and kind are built in.
            Tag::Attribute { scope: Some(TagScope::Instrumentation), .. } | Tag::Status | Tag::Kind | Tag::Unlisted => {
                return None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_read_as_tempo_reads_them() {
        let attribute = |scope, key: &str| Tag::Attribute { scope, key: key.to_owned() };
        assert_eq!(Tag::parse("resource.service.name"), attribute(Some(TagScope::Resource), "service.name"));
        assert_eq!(Tag::parse("span.http.method"), attribute(Some(TagScope::Span), "http.method"));
        assert_eq!(Tag::parse(".http.method"), attribute(None, "http.method"));
        assert_eq!(Tag::parse("service.name"), attribute(None, "service.name"), "Tempo v1's bare names");
        assert_eq!(Tag::parse("spanish"), attribute(None, "spanish"));
        assert_eq!(Tag::parse("name"), Tag::Name);
        assert_eq!(Tag::parse("span:status"), Tag::Status);
        assert_eq!(Tag::parse("status.code"), Tag::Status);
        assert_eq!(Tag::parse("kind"), Tag::Kind);
        assert_eq!(Tag::parse("trace:rootService"), Tag::RootServiceName);
        assert_eq!(Tag::parse("span:id"), Tag::Unlisted);
        assert_eq!(Tag::parse("duration"), Tag::Unlisted);
    }

    #[test]
    fn keys_and_values_in_sql_are_quoted() {
        assert_eq!(quote("it's"), "'it''s'");
        let sql = Tag::parse("span.o'k").values_sql("true", 5).unwrap();
        assert!(sql.contains("attributes['o''k']"), "{sql}");
        assert!(Tag::Status.values_sql("true", 5).is_none());
    }
}
