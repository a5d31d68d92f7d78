//! TraceQL, the language alone: text in, a checked query (an AST) out.
//!
//! This module owns the TraceQL front end: the lexer ([`lexer`]), the syntax tree and its canonical
//! printing ([`ast`], [`print`](mod@print)), the parser with positioned errors ([`parser`]) and the static checks
//! that refuse queries Tempo refuses with a 400 ([`validate`]). It does no I/O, plans nothing and calls
//! nothing else in spanlake; the planner onto DataFusion (`search`) and the HTTP faces (`api`) call it.
//!
//! The grammar follows Grafana Tempo's TraceQL (operator precedence included: `&&` and `||` share one
//! level and associate to the left, as in Tempo), so a query means here what it means there.

pub mod ast;
pub mod lexer;
pub mod parser;
pub mod print;
pub mod validate;

#[cfg(test)]
mod tests;

pub use ast::Query;

/// Where in the query text something is, so a user can find the mistake the error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset from the start of the query text.
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`, counting lines and characters up to it.
    pub fn locate(text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before.get(line_start..).map_or(0, |rest| rest.chars().count()) + 1;
        Position { offset, line, column }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Everything that can be wrong with a TraceQL query; every variant says where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceqlError {
    /// The text is not TraceQL: a bad token, or a token where another was expected.
    #[error("{position}: {message}")]
    Syntax {
        /// Where the parser stopped.
        position: Position,
        /// What was expected and what was found.
        message: String,
    },
    /// Nesting deeper than [`parser::MAX_DEPTH`]: refused so no query can exhaust the stack.
    #[error("{position}: the query nests deeper than {limit} levels")]
    TooDeep {
        /// Where the limit was crossed.
        position: Position,
        /// The limit.
        limit: usize,
    },
    /// The query parses but is meaningless (Tempo answers these with a 400): a type mismatch, an
    /// operator on the wrong type, a bad regular expression, an aggregate of a non-number.
    #[error("{position}: {problem}")]
    Invalid {
        /// Where the offending expression starts.
        position: Position,
        /// What is wrong, naming the expression.
        problem: String,
    },
}

/// Parses `text` into a query without checking its types; see [`check`] for both.
pub fn parse(text: &str) -> Result<Query, TraceqlError> {
    parser::Parser::new(text)?.parse_query()
}

/// Parses `text` and refuses what Tempo refuses: the one call the search path needs.
pub fn check(text: &str) -> Result<Query, TraceqlError> {
    let query = parse(text)?;
    validate::validate(&query, text)?;
    Ok(query)
}
