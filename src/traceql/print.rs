//! The canonical TraceQL text of a tree: single spaces around operators, parentheses only where the
//! precedence needs them, scoped intrinsic names, quoted names and strings only where needed. Parsing
//! the printed text gives back an equal tree.

use std::fmt::{self, Display, Formatter};

use super::ast::{
    Aggregate, Attribute, AttributeScope, FieldExpr, FieldKind, Hint, Pipeline, Query, ScalarExpr, ScalarFilter,
    SpansetExpr, Stage, Static,
};

/// Precedence of atoms (literals, names, calls): never parenthesised.
const ATOM: u8 = u8::MAX;

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pipeline)?;
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            write_list(f, &self.hints)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (index, stage) in self.stages.iter().enumerate() {
            if index > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{stage}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spanset(expr) => write!(f, "{expr}"),
            Stage::ScalarFilter(filter) => write!(f, "{filter}"),
            Stage::By(expressions) => call(f, "by", expressions),
            Stage::Select(expressions) => call(f, "select", expressions),
            Stage::Coalesce => f.write_str("coalesce()"),
        }
    }
}

fn call(f: &mut Formatter<'_>, name: &str, arguments: &[FieldExpr]) -> fmt::Result {
    write!(f, "{name}(")?;
    write_list(f, arguments)?;
    f.write_str(")")
}

fn write_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Writes `child`, in parentheses when its precedence is lower than `minimum`.
fn operand(f: &mut Formatter<'_>, child: &dyn Display, precedence: u8, minimum: u8) -> fmt::Result {
    if precedence < minimum { write!(f, "({child})") } else { write!(f, "{child}") }
}

/// The least precedence the (left, right) operands of an infix operator may have without parentheses.
fn operand_minimums(precedence: u8, right_associative: bool) -> (u8, u8) {
    if right_associative { (precedence + 1, precedence) } else { (precedence, precedence + 1) }
}

impl SpansetExpr {
    fn precedence(&self) -> u8 {
        match self {
            SpansetExpr::Binary { op, .. } => op.precedence(),
            SpansetExpr::Filter { .. } | SpansetExpr::Pipeline(_) => ATOM,
        }
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter { condition: None, .. } => f.write_str("{}"),
            SpansetExpr::Filter { condition: Some(condition), .. } => write!(f, "{{ {condition} }}"),
            SpansetExpr::Pipeline(pipeline) => write!(f, "({pipeline})"),
            SpansetExpr::Binary { op, left, right } => {
                let (left_minimum, right_minimum) = operand_minimums(op.precedence(), false);
                operand(f, left.as_ref(), left.precedence(), left_minimum)?;
                write!(f, " {} ", op.symbol())?;
                operand(f, right.as_ref(), right.precedence(), right_minimum)
            }
        }
    }
}

impl Display for ScalarFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.left, self.op.symbol(), self.right)
    }
}

impl ScalarExpr {
    fn precedence(&self) -> u8 {
        match self {
            ScalarExpr::Binary { op, .. } => op.precedence(),
            ScalarExpr::Aggregate(_) | ScalarExpr::Static(..) => ATOM,
        }
    }
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Aggregate(aggregate) => write!(f, "{aggregate}"),
            ScalarExpr::Static(value, _) => write!(f, "{value}"),
            ScalarExpr::Binary { op, left, right } => {
                let (left_minimum, right_minimum) = operand_minimums(op.precedence(), op.is_right_associative());
                operand(f, left.as_ref(), left.precedence(), left_minimum)?;
                write!(f, " {} ", op.symbol())?;
                operand(f, right.as_ref(), right.precedence(), right_minimum)
            }
        }
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.argument {
            Some(argument) => write!(f, "{}({argument})", self.function.name()),
            None => write!(f, "{}()", self.function.name()),
        }
    }
}

impl FieldExpr {
    fn precedence(&self) -> u8 {
        match &self.kind {
            FieldKind::Binary(op, ..) => op.precedence(),
            FieldKind::Unary(op, _) => op.precedence(),
            FieldKind::Static(_) | FieldKind::Attribute(_) | FieldKind::Intrinsic(_) => ATOM,
        }
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FieldKind::Static(value) => write!(f, "{value}"),
            FieldKind::Attribute(attribute) => write!(f, "{attribute}"),
            FieldKind::Intrinsic(intrinsic) => write!(f, "{intrinsic}"),
            FieldKind::Unary(op, inner) => {
                f.write_str(match op {
                    super::ast::UnaryOp::Neg => "-",
                    super::ast::UnaryOp::Not => "!",
                })?;
                // A prefix operator needs no parentheses around another (`--x` parses as `-(-x)`), and
                // adding them would nest the canonical form twice as deep as the query (found by fuzzing).
                if matches!(inner.kind, FieldKind::Unary(..)) {
                    return write!(f, "{inner}");
                }
                operand(f, inner.as_ref(), inner.precedence(), op.precedence() + 1)
            }
            FieldKind::Binary(op, left, right) => {
                let (left_minimum, right_minimum) = operand_minimums(op.precedence(), op.is_right_associative());
                operand(f, left.as_ref(), left.precedence(), left_minimum)?;
                write!(f, " {} ", op.symbol())?;
                operand(f, right.as_ref(), right.precedence(), right_minimum)
            }
        }
    }
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.parent {
            f.write_str("parent.")?;
        }
        f.write_str(match self.scope {
            AttributeScope::None if self.parent => "",
            AttributeScope::None => ".",
            AttributeScope::Span => "span.",
            AttributeScope::Resource => "resource.",
            AttributeScope::Event => "event.",
            AttributeScope::Link => "link.",
            AttributeScope::Instrumentation => "instrumentation.",
        })?;
        let plain = !self.name.is_empty()
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/:@".contains(c))
            && !(self.parent
                && self.scope == AttributeScope::None
                && (self.name.starts_with("span.") || self.name.starts_with("resource.")));
        if plain {
            return f.write_str(&self.name);
        }
        f.write_str("\"")?;
        for character in self.name.chars() {
            if matches!(character, '"' | '\\') {
                f.write_str("\\")?;
            }
            write!(f, "{character}")?;
        }
        f.write_str("\"")
    }
}

impl Display for Static {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Static::Nil => f.write_str("nil"),
            Static::Bool(value) => write!(f, "{value}"),
            Static::Int(value) => write!(f, "{value}"),
            Static::Float(value) => write!(f, "{value:?}"),
            Static::Str(value) => write_string(f, value),
            Static::Duration(duration) => write_duration(f, duration.as_nanos()),
            Static::Status(status) => f.write_str(status.keyword()),
            Static::Kind(kind) => f.write_str(kind.keyword()),
        }
    }
}

fn write_string(f: &mut Formatter<'_>, value: &str) -> fmt::Result {
    f.write_str("\"")?;
    for character in value.chars() {
        match character {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            control if control.is_control() => write!(f, "\\u{:04x}", u32::from(control))?,
            other => write!(f, "{other}")?,
        }
    }
    f.write_str("\"")
}

/// A duration in the largest unit that holds it exactly: `1500ms`, `2h`, `0s`.
fn write_duration(f: &mut Formatter<'_>, nanos: u128) -> fmt::Result {
    if nanos == 0 {
        return f.write_str("0s");
    }
    let units: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let (size, unit) = units.into_iter().find(|(size, _)| nanos.is_multiple_of(*size)).unwrap_or((1, "ns"));
    write!(f, "{}{unit}", nanos / size)
}

impl Display for Hint {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.key, self.value)
    }
}
