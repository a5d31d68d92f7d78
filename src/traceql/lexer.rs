//! Text to tokens. Attribute names and scoped intrinsics are recognised here, because whether `.` ends
//! a name or belongs to it (`span.http.status_code`) depends on the characters, not on the grammar.

use super::ast::{AttributeScope, Intrinsic};
use super::{Position, TraceqlError};

/// Byte range of a token or node in the query text. Positions are not part of a query's meaning, so
/// any two spans compare equal: two parses of differently spaced texts give equal trees.
#[derive(Debug, Clone, Copy, Default, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl PartialEq for Span {
    fn eq(&self, _other: &Span) -> bool {
        true
    }
}

/// One lexical unit of TraceQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// `{`
    OpenBrace,
    /// `}`
    CloseBrace,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
    /// `,`
    Comma,
    /// `|`
    Pipe,
    /// An operator made of symbols (`=`, `!~`, `&>>`, …), kept as its text.
    Symbol(&'static str),
    /// A word: keyword, intrinsic, function name or hint key; the parser decides which.
    Word(String),
    /// `span:name` and the other colon forms.
    ScopedIntrinsic(Intrinsic),
    /// `.name`, `span.name`, `parent.resource.name`, …
    Attribute {
        /// Whose attribute: span, resource, …, or none for `.name`.
        scope: AttributeScope,
        /// Written `parent.` in front: the attribute of the span's parent.
        parent: bool,
        /// The name, unquoted and unescaped.
        name: String,
    },
    /// A string literal, unescaped.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A duration literal (`1.5s`, `100ms`, `1h30m`; units `ns us µs ms s m h d w y`).
    Duration(std::time::Duration),
    /// The end of the text.
    End,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::OpenBrace => f.write_str("\"{\""),
            Token::CloseBrace => f.write_str("\"}\""),
            Token::OpenParen => f.write_str("\"(\""),
            Token::CloseParen => f.write_str("\")\""),
            Token::Comma => f.write_str("\",\""),
            Token::Pipe => f.write_str("\"|\""),
            Token::Symbol(symbol) => write!(f, "\"{symbol}\""),
            Token::Word(word) => write!(f, "\"{word}\""),
            Token::ScopedIntrinsic(intrinsic) => write!(f, "\"{intrinsic}\""),
            Token::Attribute { .. } => f.write_str("an attribute"),
            Token::Str(_) => f.write_str("a string"),
            Token::Int(_) | Token::Float(_) => f.write_str("a number"),
            Token::Duration(_) => f.write_str("a duration"),
            Token::End => f.write_str("the end of the query"),
        }
    }
}

/// Operators, longest first so `!>>` wins over `!>` and `!`.
const SYMBOLS: [&str; 29] = [
    "!>>", "!<<", "&>>", "&<<", "&&", "||", "!=", "=~", "!~", ">=", "<=", ">>", "<<", "!>", "!<", "&>", "&<", "&~",
    "=", ">", "<", "~", "!", "+", "-", "*", "/", "%", "^",
];

/// Splits a whole query into tokens, each with its byte span; the last is [`Token::End`].
pub fn tokenize(text: &str) -> Result<Vec<(Token, Span)>, TraceqlError> {
    let mut lexer = Lexer { text, offset: 0 };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_space();
        let start = lexer.offset;
        let token = lexer.next_token()?;
        let is_end = token == Token::End;
        tokens.push((token, Span { start, end: lexer.offset }));
        if is_end {
            return Ok(tokens);
        }
    }
}

struct Lexer<'text> {
    text: &'text str,
    offset: usize,
}

fn syntax_error(text: &str, offset: usize, message: String) -> TraceqlError {
    TraceqlError::Syntax { position: Position::locate(text, offset), message }
}

/// Characters that may appear in an unquoted attribute name: Tempo's set, which ends a name only at
/// space and the characters that delimit expressions.
pub fn is_attribute_char(character: char) -> bool {
    !character.is_whitespace() && !"{}()=~!<>&|^,\"".contains(character)
}

fn is_word_start(character: char) -> bool {
    character.is_ascii_alphabetic() || character == '_'
}

fn is_word_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_'
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        self.text.get(self.offset..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.offset += character.len_utf8();
        Some(character)
    }

    fn error(&self, offset: usize, message: String) -> TraceqlError {
        syntax_error(self.text, offset, message)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn next_token(&mut self) -> Result<Token, TraceqlError> {
        let start = self.offset;
        let Some(character) = self.peek() else {
            return Ok(Token::End);
        };
        let single = match character {
            '{' => Some(Token::OpenBrace),
            '}' => Some(Token::CloseBrace),
            '(' => Some(Token::OpenParen),
            ')' => Some(Token::CloseParen),
            ',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(token) = single {
            self.bump();
            return Ok(token);
        }
        if character == '|' && !self.rest().starts_with("||") {
            self.bump();
            return Ok(Token::Pipe);
        }
        if character == '"' {
            self.bump();
            return self.quoted_string(start).map(Token::Str);
        }
        if character == '`' {
            self.bump();
            return self.raw_string(start).map(Token::Str);
        }
        if character == '.' {
            self.bump();
            let name = self.attribute_name(start)?;
            return Ok(Token::Attribute { scope: AttributeScope::None, parent: false, name });
        }
        if character.is_ascii_digit() {
            return self.number(start);
        }
        if is_word_start(character) {
            return self.word(start);
        }
        if let Some(symbol) = SYMBOLS.iter().find(|symbol| self.rest().starts_with(**symbol)) {
            self.offset += symbol.len();
            return Ok(Token::Symbol(symbol));
        }
        Err(self.error(start, format!("unexpected character {character:?}")))
    }

    /// A word, or — when `.` or `:` follows a scope word directly — an attribute or scoped intrinsic.
    fn word(&mut self, start: usize) -> Result<Token, TraceqlError> {
        while self.peek().is_some_and(is_word_char) {
            self.bump();
        }
        let word = self.text.get(start..self.offset).unwrap_or("").to_string();
        if self.peek() == Some('.') {
            let scope = match word.as_str() {
                "span" => Some(AttributeScope::Span),
                "resource" => Some(AttributeScope::Resource),
                "event" => Some(AttributeScope::Event),
                "link" => Some(AttributeScope::Link),
                "instrumentation" => Some(AttributeScope::Instrumentation),
                "parent" => None,
                _ => return Ok(Token::Word(word)),
            };
            self.bump();
            return match scope {
                Some(scope) => {
                    let name = self.attribute_name(start)?;
                    Ok(Token::Attribute { scope, parent: false, name })
                }
                None => self.parent_attribute(start),
            };
        }
        if self.peek() == Some(':') && ["span", "trace", "event", "link", "instrumentation"].contains(&word.as_str()) {
            self.bump();
            let name_start = self.offset;
            while self.peek().is_some_and(is_word_char) {
                self.bump();
            }
            let name = self.text.get(name_start..self.offset).unwrap_or("");
            let written = format!("{word}:{name}");
            return Intrinsic::from_scoped(&written)
                .map(Token::ScopedIntrinsic)
                .ok_or_else(|| self.error(start, format!("unknown intrinsic \"{written}\"")));
        }
        Ok(Token::Word(word))
    }

    /// After `parent.`: `resource.` or `span.` may name the scope; anything else is an unscoped name.
    fn parent_attribute(&mut self, start: usize) -> Result<Token, TraceqlError> {
        let mut scope = AttributeScope::None;
        for (prefix, prefixed_scope) in [("resource.", AttributeScope::Resource), ("span.", AttributeScope::Span)] {
            if self.rest().starts_with(prefix) {
                self.offset += prefix.len();
                scope = prefixed_scope;
                break;
            }
        }
        let name = self.attribute_name(start)?;
        Ok(Token::Attribute { scope, parent: true, name })
    }

    /// An attribute name: unquoted runs and `"quoted"` parts, joined.
    fn attribute_name(&mut self, start: usize) -> Result<String, TraceqlError> {
        let mut name = String::new();
        let mut quoted = false;
        loop {
            match self.peek() {
                Some('"') => {
                    let quote_start = self.offset;
                    self.bump();
                    name.push_str(&self.quoted_name(quote_start)?);
                    quoted = true;
                }
                Some(character) if is_attribute_char(character) => {
                    name.push(character);
                    self.bump();
                }
                _ => break,
            }
        }
        if name.is_empty() && !quoted {
            let found = self.peek().map_or("the end of the query".to_string(), |c| format!("{c:?}"));
            return Err(self.error(start, format!("expected an attribute name after the scope, found {found}")));
        }
        Ok(name)
    }

    /// The quoted part of an attribute name: only `\"` and `\\` are escapes, as in Tempo.
    fn quoted_name(&mut self, start: usize) -> Result<String, TraceqlError> {
        let mut name = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(start, "unterminated quoted attribute name".to_string())),
                Some('"') => return Ok(name),
                Some('\\') => match self.bump() {
                    Some(escaped @ ('"' | '\\')) => name.push(escaped),
                    _ => return Err(self.error(self.offset, "invalid escape in attribute name".to_string())),
                },
                Some(character) => name.push(character),
            }
        }
    }

    fn quoted_string(&mut self, start: usize) -> Result<String, TraceqlError> {
        let mut value = String::new();
        loop {
            let escape_start = self.offset;
            match self.bump() {
                None => return Err(self.error(start, "unterminated string".to_string())),
                Some('"') => return Ok(value),
                Some('\\') => value.push(self.escape(escape_start)?),
                Some(character) => value.push(character),
            }
        }
    }

    fn escape(&mut self, start: usize) -> Result<char, TraceqlError> {
        let escaped = match self.bump() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('0') => '\0',
            Some('\\') => '\\',
            Some('"') => '"',
            Some('\'') => '\'',
            Some('u') => {
                let hex = self.rest().get(..4).unwrap_or("");
                let code = u32::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 4);
                let character = code.and_then(char::from_u32);
                let Some(character) = character else {
                    return Err(self.error(start, "\\u must be followed by four hex digits of a character".to_string()));
                };
                self.offset += 4;
                character
            }
            other => {
                let found = other.map_or("the end".to_string(), |c| format!("{c:?}"));
                return Err(self.error(start, format!("unknown escape \\ followed by {found}")));
            }
        };
        Ok(escaped)
    }

    fn raw_string(&mut self, start: usize) -> Result<String, TraceqlError> {
        let content_start = self.offset;
        match self.rest().find('`') {
            Some(length) => {
                self.offset += length + 1;
                Ok(self.text.get(content_start..content_start + length).unwrap_or("").to_string())
            }
            None => Err(self.error(start, "unterminated `string`".to_string())),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
    }

    /// An integer, a float (`1.5`, `2e-3`) or a duration (`1.5s`, `1h30m`, `100µs`).
    fn number(&mut self, start: usize) -> Result<Token, TraceqlError> {
        let (text, is_float) = self.unsigned_number();
        if !self.peek().is_some_and(char::is_alphabetic) {
            return if is_float {
                match text.parse::<f64>() {
                    Ok(float) if float.is_finite() => Ok(Token::Float(float)),
                    _ => Err(self.error(start, format!("float {text} is out of range"))),
                }
            } else {
                text.parse::<i64>()
                    .map(Token::Int)
                    .map_err(|_| self.error(start, format!("integer {text} is out of range")))
            };
        }
        let text_of_query = self.text;
        let out_of_range = || syntax_error(text_of_query, start, "duration is out of range".to_string());
        let mut total_nanos: u128 = 0;
        let (mut text, mut is_float) = (text, is_float);
        loop {
            let unit_start = self.offset;
            while self.peek().is_some_and(char::is_alphabetic) {
                self.bump();
            }
            let unit = self.text.get(unit_start..self.offset).unwrap_or("");
            let nanos_per_unit: u64 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "d" => 86_400_000_000_000,
                // Prometheus's units, which Tempo accepts too.
                "w" => 604_800_000_000_000,
                "y" => 31_536_000_000_000_000,
                _ => return Err(self.error(unit_start, format!("unknown duration unit \"{unit}\""))),
            };
            let nanos = if is_float {
                let float = text.parse::<f64>().unwrap_or(f64::INFINITY) * nanos_per_unit as f64;
                if !float.is_finite() || float >= u64::MAX as f64 {
                    return Err(out_of_range());
                }
                float.round() as u128
            } else {
                let count = text.parse::<u128>().map_err(|_| out_of_range())?;
                count.checked_mul(u128::from(nanos_per_unit)).ok_or_else(out_of_range)?
            };
            total_nanos = total_nanos.saturating_add(nanos);
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                break;
            }
            (text, is_float) = self.unsigned_number();
            if !self.peek().is_some_and(char::is_alphabetic) {
                return Err(self.error(self.offset, "expected a duration unit".to_string()));
            }
        }
        let nanos = u64::try_from(total_nanos).map_err(|_| out_of_range())?;
        Ok(Token::Duration(std::time::Duration::from_nanos(nanos)))
    }

    /// Digits with an optional fraction and exponent: their text, and whether it is a float.
    fn unsigned_number(&mut self) -> (String, bool) {
        let start = self.offset;
        self.digits();
        let mut is_float = false;
        let after = self.rest().as_bytes();
        if after.first() == Some(&b'.') && after.get(1).is_some_and(u8::is_ascii_digit) {
            self.bump();
            self.digits();
            is_float = true;
        }
        let after = self.rest().as_bytes();
        let exponent_digits_at = match (after.first(), after.get(1)) {
            (Some(b'e' | b'E'), Some(b'+' | b'-')) => 2,
            (Some(b'e' | b'E'), _) => 1,
            _ => 0,
        };
        if exponent_digits_at > 0 && after.get(exponent_digits_at).is_some_and(u8::is_ascii_digit) {
            self.offset += exponent_digits_at;
            self.digits();
            is_float = true;
        }
        (self.text.get(start..self.offset).unwrap_or("0").to_string(), is_float)
    }
}
