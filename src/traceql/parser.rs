//! Tokens to a [`Query`]: recursive descent with precedence climbing. Every error names the position
//! and what was expected; nesting is bounded by [`MAX_DEPTH`], so no input can exhaust the stack (of the
//! parser, or later of printing, checking or dropping the tree).

use super::ast::{
    Aggregate, AggregateFunction, Attribute, BinaryOp, FieldExpr, FieldKind, Hint, Intrinsic, Kind, Pipeline, Query,
    ScalarExpr, ScalarFilter, SpansetExpr, SpansetOp, Stage, Static, Status, UnaryOp,
};
use super::lexer::{Span, Token, tokenize};
use super::{Position, TraceqlError};

/// How deeply a query may nest (parentheses, operators in a chain, prefix operators). Deep enough for
/// any query a person or Grafana writes; shallow enough that every recursive walk stays well inside a
/// thread's stack.
pub const MAX_DEPTH: usize = 256;

/// The parser's state over one query's tokens.
pub struct Parser<'text> {
    text: &'text str,
    tokens: Vec<(Token, Span)>,
    next: usize,
    depth: usize,
}

type Parsed<T> = Result<T, TraceqlError>;

impl<'text> Parser<'text> {
    /// Tokenizes `text`; lexical errors are reported here.
    pub fn new(text: &'text str) -> Parsed<Parser<'text>> {
        Ok(Parser { text, tokens: tokenize(text)?, next: 0, depth: 0 })
    }

    /// Parses the whole text as one query, hints included.
    pub fn parse_query(mut self) -> Parsed<Query> {
        let pipeline = self.pipeline()?;
        let mut hints = Vec::new();
        while self.peek_word("with") {
            hints.extend(self.hints()?);
        }
        if *self.peek() != Token::End {
            return Err(self.expected("\"|\", an operator or the end of the query"));
        }
        Ok(Query { pipeline, hints })
    }

    // ---- token access ----

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        self.tokens.get(self.next + ahead).or(self.tokens.last()).map_or(&Token::End, |(token, _)| token)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Token::Word(found) if found == word)
    }

    fn span(&self) -> Span {
        self.tokens.get(self.next).or(self.tokens.last()).map_or(Span::default(), |(_, span)| *span)
    }

    fn previous_end(&self) -> usize {
        self.next.checked_sub(1).and_then(|index| self.tokens.get(index)).map_or(0, |(_, span)| span.end)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.next < self.tokens.len() {
            self.next += 1;
        }
        token
    }

    fn expected(&self, what: &str) -> TraceqlError {
        let after = self
            .next
            .checked_sub(1)
            .and_then(|index| self.tokens.get(index))
            .map(|(token, _)| format!(" after {token}"))
            .unwrap_or_default();
        TraceqlError::Syntax {
            position: Position::locate(self.text, self.span().start),
            message: format!("expected {what}{after}, found {}", self.peek()),
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Parsed<()> {
        if self.peek() == token {
            self.advance();
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn enter(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(TraceqlError::TooDeep {
                position: Position::locate(self.text, self.span().start),
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn leave(&mut self, levels: usize) {
        self.depth = self.depth.saturating_sub(levels);
    }

    // ---- pipelines and stages ----

    fn pipeline(&mut self) -> Parsed<Pipeline> {
        let mut stages = vec![self.stage()?];
        while *self.peek() == Token::Pipe {
            self.advance();
            stages.push(self.stage()?);
        }
        Ok(Pipeline { stages })
    }

    fn stage(&mut self) -> Parsed<Stage> {
        let is_call = *self.peek_at(1) == Token::OpenParen;
        if is_call && self.peek_word("by") {
            self.advance();
            return Ok(Stage::By(self.expression_list()?));
        }
        if is_call && self.peek_word("select") {
            self.advance();
            return Ok(Stage::Select(self.expression_list()?));
        }
        if is_call && self.peek_word("coalesce") {
            self.advance();
            self.expect(&Token::OpenParen, "\"(\"")?;
            self.expect(&Token::CloseParen, "\")\" (coalesce takes no arguments)")?;
            return Ok(Stage::Coalesce);
        }
        if self.starts_spanset() {
            return Ok(Stage::Spanset(self.spanset_expr(0)?));
        }
        Ok(Stage::ScalarFilter(self.scalar_filter()?))
    }

    /// Whether the stage ahead is a spanset expression (`{`, or parentheses around a pipeline) rather
    /// than a scalar filter such as `count() > 2` or `(count() + 1) > 2`.
    fn starts_spanset(&self) -> bool {
        let mut ahead = 0;
        while *self.peek_at(ahead) == Token::OpenParen {
            ahead += 1;
        }
        match self.peek_at(ahead) {
            Token::OpenBrace => true,
            Token::Word(word) => ahead > 0 && ["by", "select", "coalesce"].contains(&word.as_str()),
            _ => false,
        }
    }

    fn expression_list(&mut self) -> Parsed<Vec<FieldExpr>> {
        self.expect(&Token::OpenParen, "\"(\"")?;
        let mut expressions = vec![self.field_expr(0)?];
        while *self.peek() == Token::Comma {
            self.advance();
            expressions.push(self.field_expr(0)?);
        }
        self.expect(&Token::CloseParen, "\",\" or \")\"")?;
        Ok(expressions)
    }

    fn hints(&mut self) -> Parsed<Vec<Hint>> {
        self.advance();
        self.expect(&Token::OpenParen, "\"(\"")?;
        let mut hints = vec![self.hint()?];
        while *self.peek() == Token::Comma {
            self.advance();
            hints.push(self.hint()?);
        }
        self.expect(&Token::CloseParen, "\",\" or \")\"")?;
        Ok(hints)
    }

    fn hint(&mut self) -> Parsed<Hint> {
        let Token::Word(key) = self.peek().clone() else {
            return Err(self.expected("a hint name"));
        };
        self.advance();
        self.expect(&Token::Symbol("="), "\"=\"")?;
        let Some(value) = static_of(self.peek()) else {
            return Err(self.expected("a value"));
        };
        self.advance();
        Ok(Hint { key, value })
    }

    // ---- spanset expressions ----

    fn spanset_expr(&mut self, min_precedence: u8) -> Parsed<SpansetExpr> {
        self.enter()?;
        let mut left = self.spanset_operand()?;
        let mut levels = 1;
        while let Some(op) = spanset_op(self.peek()).filter(|op| op.precedence() >= min_precedence) {
            self.advance();
            self.enter()?;
            levels += 1;
            let right = self.spanset_expr(op.precedence() + 1)?;
            left = SpansetExpr::Binary { op, left: Box::new(left), right: Box::new(right) };
        }
        self.leave(levels);
        Ok(left)
    }

    fn spanset_operand(&mut self) -> Parsed<SpansetExpr> {
        let start = self.span().start;
        match self.peek() {
            Token::OpenBrace => {
                self.advance();
                let condition = if *self.peek() == Token::CloseBrace { None } else { Some(self.field_expr(0)?) };
                self.expect(&Token::CloseBrace, "an operator or \"}\"")?;
                Ok(SpansetExpr::Filter { condition, span: Span { start, end: self.previous_end() } })
            }
            Token::OpenParen => {
                self.advance();
                let mut pipeline = self.pipeline()?;
                self.expect(&Token::CloseParen, "\"|\", an operator or \")\"")?;
                if matches!(pipeline.stages.as_slice(), [Stage::Spanset(_)])
                    && let Some(Stage::Spanset(inner)) = pipeline.stages.pop()
                {
                    return Ok(inner);
                }
                Ok(SpansetExpr::Pipeline(Box::new(pipeline)))
            }
            _ => Err(self.expected("\"{\" or \"(\"")),
        }
    }

    // ---- scalar filters ----

    fn scalar_filter(&mut self) -> Parsed<ScalarFilter> {
        let left = self.scalar_expr(0)?;
        let Some(op) = binary_op(self.peek()).filter(|op| op.is_comparison()) else {
            return Err(self.expected("a comparison (= != < <= > >=)"));
        };
        self.advance();
        let right = self.scalar_expr(0)?;
        Ok(ScalarFilter { op, left, right })
    }

    fn scalar_expr(&mut self, min_precedence: u8) -> Parsed<ScalarExpr> {
        self.enter()?;
        let mut left = self.scalar_operand()?;
        let mut levels = 1;
        while let Some(op) = binary_op(self.peek()).filter(|op| op.is_arithmetic() && op.precedence() >= min_precedence)
        {
            self.advance();
            self.enter()?;
            levels += 1;
            let next_minimum = if op.is_right_associative() { op.precedence() } else { op.precedence() + 1 };
            let right = self.scalar_expr(next_minimum)?;
            left = ScalarExpr::Binary { op, left: Box::new(left), right: Box::new(right) };
        }
        self.leave(levels);
        Ok(left)
    }

    fn scalar_operand(&mut self) -> Parsed<ScalarExpr> {
        let span = self.span();
        if *self.peek() == Token::OpenParen {
            self.advance();
            let inner = self.scalar_expr(0)?;
            self.expect(&Token::CloseParen, "an arithmetic operator or \")\"")?;
            return Ok(inner);
        }
        if let Some(function) = aggregate_function(self.peek())
            && *self.peek_at(1) == Token::OpenParen
        {
            return self.aggregate(function).map(ScalarExpr::Aggregate);
        }
        if let Some(value) = static_of(self.peek()) {
            self.advance();
            return Ok(ScalarExpr::Static(value, span));
        }
        Err(self.expected("\"{\", an aggregate (count, avg, min, max, sum) or a value"))
    }

    fn aggregate(&mut self, function: AggregateFunction) -> Parsed<Aggregate> {
        let start = self.span().start;
        self.advance();
        self.expect(&Token::OpenParen, "\"(\"")?;
        let argument = if function == AggregateFunction::Count { None } else { Some(self.field_expr(0)?) };
        let closing = if function == AggregateFunction::Count { "\")\" (count takes no argument)" } else { "\")\"" };
        self.expect(&Token::CloseParen, closing)?;
        Ok(Aggregate { function, argument, span: Span { start, end: self.previous_end() } })
    }

    // ---- per-span (field) expressions ----

    fn field_expr(&mut self, min_precedence: u8) -> Parsed<FieldExpr> {
        self.enter()?;
        let mut left = self.field_unary()?;
        let mut levels = 1;
        while let Some(op) = binary_op(self.peek()).filter(|op| op.precedence() >= min_precedence) {
            self.advance();
            self.enter()?;
            levels += 1;
            let next_minimum = if op.is_right_associative() { op.precedence() } else { op.precedence() + 1 };
            let right = self.field_expr(next_minimum)?;
            let span = Span { start: left.span.start, end: right.span.end };
            left = FieldExpr { kind: FieldKind::Binary(op, Box::new(left), Box::new(right)), span };
        }
        self.leave(levels);
        Ok(left)
    }

    fn field_unary(&mut self) -> Parsed<FieldExpr> {
        let start = self.span().start;
        let op = match self.peek() {
            Token::Symbol("-") => UnaryOp::Neg,
            Token::Symbol("!") => UnaryOp::Not,
            _ => return self.field_primary(),
        };
        self.advance();
        let operand = self.field_expr(op.precedence() + 1)?;
        let span = Span { start, end: operand.span.end };
        Ok(FieldExpr { kind: FieldKind::Unary(op, Box::new(operand)), span })
    }

    fn field_primary(&mut self) -> Parsed<FieldExpr> {
        let span = self.span();
        let kind = match self.peek().clone() {
            Token::OpenParen => {
                self.advance();
                let inner = self.field_expr(0)?;
                self.expect(&Token::CloseParen, "an operator or \")\"")?;
                return Ok(FieldExpr { kind: inner.kind, span: Span { start: span.start, end: self.previous_end() } });
            }
            Token::Attribute { scope, parent, name } => FieldKind::Attribute(Attribute { scope, parent, name }),
            Token::ScopedIntrinsic(intrinsic) => FieldKind::Intrinsic(intrinsic),
            Token::Word(word) if static_of(self.peek()).is_none() => match Intrinsic::from_word(&word) {
                Some(intrinsic) => FieldKind::Intrinsic(intrinsic),
                None => {
                    return Err(TraceqlError::Syntax {
                        position: Position::locate(self.text, span.start),
                        message: format!("unknown identifier \"{word}\": expected an attribute, intrinsic or value"),
                    });
                }
            },
            token => match static_of(&token) {
                Some(value) => FieldKind::Static(value),
                None => return Err(self.expected("a value")),
            },
        };
        self.advance();
        Ok(FieldExpr { kind, span })
    }
}

/// The literal a token is, if it is one: numbers, strings, durations and the value keywords.
fn static_of(token: &Token) -> Option<Static> {
    let value = match token {
        Token::Str(text) => Static::Str(text.clone()),
        Token::Int(integer) => Static::Int(*integer),
        Token::Float(float) => Static::Float(*float),
        Token::Duration(duration) => Static::Duration(*duration),
        Token::Word(word) => match word.as_str() {
            "nil" => Static::Nil,
            "true" => Static::Bool(true),
            "false" => Static::Bool(false),
            "ok" => Static::Status(Status::Ok),
            "error" => Static::Status(Status::Error),
            "unset" => Static::Status(Status::Unset),
            "unspecified" => Static::Kind(Kind::Unspecified),
            "internal" => Static::Kind(Kind::Internal),
            "server" => Static::Kind(Kind::Server),
            "client" => Static::Kind(Kind::Client),
            "producer" => Static::Kind(Kind::Producer),
            "consumer" => Static::Kind(Kind::Consumer),
            _ => return None,
        },
        _ => return None,
    };
    Some(value)
}

fn binary_op(token: &Token) -> Option<BinaryOp> {
    let Token::Symbol(symbol) = token else {
        return None;
    };
    BinaryOp::ALL.into_iter().find(|op| op.symbol() == *symbol)
}

fn spanset_op(token: &Token) -> Option<SpansetOp> {
    let Token::Symbol(symbol) = token else {
        return None;
    };
    SpansetOp::ALL.into_iter().find(|op| op.symbol() == *symbol)
}

fn aggregate_function(token: &Token) -> Option<AggregateFunction> {
    let Token::Word(word) = token else {
        return None;
    };
    [
        AggregateFunction::Count,
        AggregateFunction::Avg,
        AggregateFunction::Min,
        AggregateFunction::Max,
        AggregateFunction::Sum,
    ]
    .into_iter()
    .find(|function| function.name() == word)
}
