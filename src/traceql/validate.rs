//! Static checks: the queries that parse but that Tempo refuses with a 400 — operands of different
//! types, operators on types they do not apply to (`&&` on numbers, `=~` on durations), `nil` compared
//! with an intrinsic, aggregates of non-numbers, scalar filters without an aggregate, malformed regular
//! expressions.
//!
//! Regular expressions are checked for structure only (balanced groups and classes, something before a
//! repetition, no trailing `\`): the `regex` crate is not a direct dependency of spanlake, and the
//! planner, which compiles them, reports what this check lets through.

use super::ast::{
    Aggregate, AggregateFunction, Attribute, AttributeScope, BinaryOp, FieldExpr, FieldKind, Intrinsic, Pipeline,
    Query, ScalarExpr, ScalarFilter, Span, SpansetExpr, Stage, Static, UnaryOp,
};
use super::{Position, TraceqlError};

/// The type an expression has before any data is read; `Unknown` is an attribute's (any type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// An attribute: its type is known only per span, so it matches anything.
    Unknown,
    /// `nil`
    Nil,
    /// `true`, comparisons.
    Bool,
    /// Integers.
    Int,
    /// Floats.
    Float,
    /// Durations.
    Duration,
    /// Strings.
    Str,
    /// `ok`, `error`, `unset`.
    Status,
    /// `server`, `client`, ….
    Kind,
}

impl ValueType {
    fn is_numeric(self) -> bool {
        matches!(self, ValueType::Int | ValueType::Float | ValueType::Duration)
    }

    /// Whether two operand types may meet in one operation: equal, both numeric, or one unknown/nil.
    fn matches(self, other: ValueType) -> bool {
        self == other
            || (self.is_numeric() && other.is_numeric())
            || [self, other].iter().any(|t| matches!(t, ValueType::Unknown | ValueType::Nil))
    }

    /// Whether `op` applies to an operand of this type.
    fn allows(self, op: BinaryOp) -> bool {
        use BinaryOp::*;
        match self {
            ValueType::Unknown => true,
            ValueType::Bool => matches!(op, And | Or | Eq | Neq),
            ValueType::Int | ValueType::Float | ValueType::Duration => {
                matches!(op, Add | Sub | Mul | Div | Mod | Pow | Eq | Neq | Gt | Gte | Lt | Lte)
            }
            ValueType::Str => matches!(op, Eq | Neq | Regex | NotRegex | Gt | Gte | Lt | Lte),
            ValueType::Nil | ValueType::Status | ValueType::Kind => matches!(op, Eq | Neq),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ValueType::Unknown => "an attribute",
            ValueType::Nil => "nil",
            ValueType::Bool => "a boolean",
            ValueType::Int => "an integer",
            ValueType::Float => "a float",
            ValueType::Duration => "a duration",
            ValueType::Str => "a string",
            ValueType::Status => "a status",
            ValueType::Kind => "a kind",
        }
    }
}

/// The type of an intrinsic's values.
pub fn intrinsic_type(intrinsic: Intrinsic) -> ValueType {
    use Intrinsic::*;
    match intrinsic {
        Duration | TraceDuration | EventTimeSinceStart => ValueType::Duration,
        Status => ValueType::Status,
        Kind => ValueType::Kind,
        ChildCount | NestedSetParent | NestedSetLeft | NestedSetRight => ValueType::Int,
        Parent => ValueType::Unknown,
        Name
        | StatusMessage
        | SpanId
        | ParentId
        | TraceId
        | TraceRootName
        | TraceRootService
        | EventName
        | LinkTraceId
        | LinkSpanId
        | InstrumentationName
        | InstrumentationVersion => ValueType::Str,
    }
}

fn static_type(value: &Static) -> ValueType {
    match value {
        Static::Nil => ValueType::Nil,
        Static::Bool(_) => ValueType::Bool,
        Static::Int(_) => ValueType::Int,
        Static::Float(_) => ValueType::Float,
        Static::Str(_) => ValueType::Str,
        Static::Duration(_) => ValueType::Duration,
        Static::Status(_) => ValueType::Status,
        Static::Kind(_) => ValueType::Kind,
    }
}

/// The type an expression's values have; Tempo's rule: comparisons and logic give booleans, arithmetic
/// the type of its first operand whose type is known.
pub fn field_type(expr: &FieldExpr) -> ValueType {
    match &expr.kind {
        FieldKind::Static(value) => static_type(value),
        FieldKind::Attribute(_) => ValueType::Unknown,
        FieldKind::Intrinsic(intrinsic) => intrinsic_type(*intrinsic),
        FieldKind::Unary(UnaryOp::Not, _) => ValueType::Bool,
        FieldKind::Unary(UnaryOp::Neg, inner) => field_type(inner),
        FieldKind::Binary(op, left, right) => {
            if op.is_arithmetic() {
                match field_type(left) {
                    ValueType::Unknown => field_type(right),
                    known => known,
                }
            } else {
                ValueType::Bool
            }
        }
    }
}

/// Refuses what Tempo refuses; `text` is the query the tree was parsed from, for positions.
pub fn validate(query: &Query, text: &str) -> Result<(), TraceqlError> {
    Checker { text }.pipeline(&query.pipeline)
}

struct Checker<'text> {
    text: &'text str,
}

type Checked = Result<(), TraceqlError>;

impl Checker<'_> {
    fn invalid(&self, span: Span, problem: String) -> TraceqlError {
        TraceqlError::Invalid { position: Position::locate(self.text, span.start), problem }
    }

    fn pipeline(&self, pipeline: &Pipeline) -> Checked {
        pipeline.stages.iter().try_for_each(|stage| self.stage(stage))
    }

    fn stage(&self, stage: &Stage) -> Checked {
        match stage {
            Stage::Spanset(expr) => self.spanset(expr),
            Stage::ScalarFilter(filter) => self.scalar_filter(filter),
            Stage::By(expressions) => expressions.iter().try_for_each(|expr| {
                self.field(expr)?;
                if !references_span(expr) {
                    return Err(self.invalid(expr.span, format!("by({expr}) must refer to an attribute or intrinsic")));
                }
                Ok(())
            }),
            Stage::Select(expressions) => expressions.iter().try_for_each(|expr| match expr.kind {
                FieldKind::Attribute(_) | FieldKind::Intrinsic(_) => Ok(()),
                _ => Err(self.invalid(expr.span, format!("select takes attributes and intrinsics, not {expr}"))),
            }),
            Stage::Coalesce => Ok(()),
        }
    }

    fn spanset(&self, expr: &SpansetExpr) -> Checked {
        match expr {
            SpansetExpr::Filter { condition: None, .. } => Ok(()),
            SpansetExpr::Filter { condition: Some(condition), .. } => {
                self.field(condition)?;
                match field_type(condition) {
                    ValueType::Bool | ValueType::Unknown => Ok(()),
                    other => Err(self.invalid(
                        condition.span,
                        format!("a spanset filter needs a condition, but {condition} is {}", other.name()),
                    )),
                }
            }
            SpansetExpr::Binary { left, right, .. } => {
                self.spanset(left)?;
                self.spanset(right)
            }
            SpansetExpr::Pipeline(pipeline) => self.pipeline(pipeline),
        }
    }

    fn scalar_filter(&self, filter: &ScalarFilter) -> Checked {
        self.scalar(&filter.left)?;
        self.scalar(&filter.right)?;
        if !has_aggregate(&filter.left) && !has_aggregate(&filter.right) {
            return Err(self.invalid(scalar_span(&filter.left), format!("{filter} compares no aggregate")));
        }
        let (left, right) = (scalar_type(&filter.left), scalar_type(&filter.right));
        if !left.matches(right) {
            return Err(self.invalid(
                scalar_span(&filter.left),
                format!("{filter} compares {} with {}", left.name(), right.name()),
            ));
        }
        Ok(())
    }

    fn scalar(&self, expr: &ScalarExpr) -> Checked {
        match expr {
            ScalarExpr::Aggregate(aggregate) => self.aggregate(aggregate),
            ScalarExpr::Static(value, span) => match static_type(value) {
                t if t.is_numeric() => Ok(()),
                t => Err(self.invalid(*span, format!("{value} is {}, but scalar filters compare numbers", t.name()))),
            },
            ScalarExpr::Binary { left, right, .. } => {
                self.scalar(left)?;
                self.scalar(right)
            }
        }
    }

    fn aggregate(&self, aggregate: &Aggregate) -> Checked {
        let Some(argument) = &aggregate.argument else {
            return Ok(());
        };
        self.field(argument)?;
        let argument_type = field_type(argument);
        if !(argument_type.is_numeric() || argument_type == ValueType::Unknown) {
            return Err(self.invalid(
                aggregate.span,
                format!("{aggregate} needs a number, but {argument} is {}", argument_type.name()),
            ));
        }
        if !references_span(argument) {
            return Err(self.invalid(aggregate.span, format!("{aggregate} must refer to an attribute or intrinsic")));
        }
        Ok(())
    }

    fn field(&self, expr: &FieldExpr) -> Checked {
        match &expr.kind {
            FieldKind::Static(_) | FieldKind::Attribute(_) | FieldKind::Intrinsic(_) => Ok(()),
            FieldKind::Unary(op, inner) => {
                self.field(inner)?;
                let inner_type = field_type(inner);
                let fits = match op {
                    UnaryOp::Neg => inner_type.is_numeric(),
                    UnaryOp::Not => inner_type == ValueType::Bool,
                };
                if fits || inner_type == ValueType::Unknown {
                    Ok(())
                } else {
                    Err(self.invalid(expr.span, format!("{expr}: cannot apply the prefix to {}", inner_type.name())))
                }
            }
            FieldKind::Binary(op, left, right) => self.binary(expr, *op, left, right),
        }
    }

    fn binary(&self, expr: &FieldExpr, op: BinaryOp, left: &FieldExpr, right: &FieldExpr) -> Checked {
        self.field(left)?;
        self.field(right)?;
        let (left_type, right_type) = (field_type(left), field_type(right));
        for operand_type in [left_type, right_type] {
            if !operand_type.allows(op) {
                return Err(self.invalid(
                    expr.span,
                    format!("{expr}: \"{}\" does not apply to {}", op.symbol(), operand_type.name()),
                ));
            }
        }
        if !left_type.matches(right_type) {
            return Err(self.invalid(
                expr.span,
                format!("{expr}: cannot compare or combine {} with {}", left_type.name(), right_type.name()),
            ));
        }
        if op == BinaryOp::Eq {
            self.nil_comparison(left, right)?;
            self.nil_comparison(right, left)?;
        }
        if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
            let FieldKind::Static(Static::Str(pattern)) = &right.kind else {
                return Err(self.invalid(
                    right.span,
                    format!("{expr}: the right of \"{}\" must be a string pattern", op.symbol()),
                ));
            };
            if let Err(problem) = check_regex_structure(pattern) {
                return Err(self.invalid(right.span, format!("invalid regular expression {}: {problem}", right)));
            }
        }
        Ok(())
    }

    /// `x = nil` asks whether an attribute is absent; intrinsics and the service name always exist, so
    /// Tempo refuses the question (`x != nil` stays allowed: it is always true).
    fn nil_comparison(&self, value: &FieldExpr, other: &FieldExpr) -> Checked {
        if other.kind != FieldKind::Static(Static::Nil) {
            return Ok(());
        }
        let service_name =
            Attribute { scope: AttributeScope::Resource, parent: false, name: "service.name".to_string() };
        match &value.kind {
            FieldKind::Intrinsic(intrinsic) => {
                Err(self
                    .invalid(value.span, format!("{intrinsic} cannot be compared with nil: intrinsics always exist")))
            }
            FieldKind::Attribute(attribute) if *attribute == service_name => {
                Err(self.invalid(value.span, format!("{attribute} cannot be compared with nil: it always exists")))
            }
            _ => Ok(()),
        }
    }
}

fn references_span(expr: &FieldExpr) -> bool {
    match &expr.kind {
        FieldKind::Static(_) => false,
        FieldKind::Attribute(_) | FieldKind::Intrinsic(_) => true,
        FieldKind::Unary(_, inner) => references_span(inner),
        FieldKind::Binary(_, left, right) => references_span(left) || references_span(right),
    }
}

fn has_aggregate(expr: &ScalarExpr) -> bool {
    match expr {
        ScalarExpr::Aggregate(_) => true,
        ScalarExpr::Static(..) => false,
        ScalarExpr::Binary { left, right, .. } => has_aggregate(left) || has_aggregate(right),
    }
}

fn scalar_span(expr: &ScalarExpr) -> Span {
    match expr {
        ScalarExpr::Aggregate(aggregate) => aggregate.span,
        ScalarExpr::Static(_, span) => *span,
        ScalarExpr::Binary { left, .. } => scalar_span(left),
    }
}

/// The type of an aggregate's values: `count()` counts, `avg` gives a float of the argument's kind
/// (a duration stays a duration), the others keep the argument's type.
fn scalar_type(expr: &ScalarExpr) -> ValueType {
    match expr {
        ScalarExpr::Aggregate(Aggregate { function: AggregateFunction::Count, .. }) => ValueType::Int,
        ScalarExpr::Aggregate(Aggregate { argument, .. }) => match argument.as_ref().map(field_type) {
            Some(ValueType::Duration) => ValueType::Duration,
            _ => ValueType::Float,
        },
        ScalarExpr::Static(value, _) => static_type(value),
        ScalarExpr::Binary { left, .. } => scalar_type(left),
    }
}

/// A structural check of a regular expression: groups and classes closed, a repetition has something
/// to repeat, no `\` at the end. Not a compiler: see the module doc.
pub fn check_regex_structure(pattern: &str) -> Result<(), String> {
    let mut open_groups = 0usize;
    let mut can_repeat = false;
    let mut characters = pattern.chars();
    let mut previous = None;
    while let Some(character) = characters.next() {
        match character {
            '\\' => {
                if characters.next().is_none() {
                    return Err("it ends with a lone \\".to_string());
                }
                can_repeat = true;
            }
            '[' => {
                let mut closed = false;
                let mut first = true;
                while let Some(inside) = characters.next() {
                    match inside {
                        '\\' => {
                            characters.next();
                        }
                        ']' if !first => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                    first = inside == '^' && first;
                }
                if !closed {
                    return Err("a [ is never closed".to_string());
                }
                can_repeat = true;
            }
            '(' => {
                open_groups += 1;
                can_repeat = false;
            }
            ')' => {
                open_groups = open_groups.checked_sub(1).ok_or_else(|| "a ) has no (".to_string())?;
                can_repeat = true;
            }
            // `(?i)` flags and the lazy `*?` are not repetitions.
            '?' if matches!(previous, Some('(' | '*' | '+' | '?' | '}')) => can_repeat = false,
            '*' | '+' | '?' if !can_repeat => return Err(format!("{character} has nothing to repeat")),
            '*' | '+' | '?' => can_repeat = false,
            '|' => can_repeat = false,
            _ => can_repeat = true,
        }
        previous = Some(character);
    }
    if open_groups > 0 {
        return Err("a ( is never closed".to_string());
    }
    Ok(())
}
