//! The syntax tree of a TraceQL query. Nodes keep the byte span they came from (for error positions),
//! but spans compare equal, so two trees are equal when the queries mean the same.

pub use super::lexer::Span;

/// A whole query: a pipeline of stages, and the `with(…)` hints that tune how it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The stages joined by `|`.
    pub pipeline: Pipeline,
    /// `with(key = value, …)`, in the order written; kept even when unknown, as Tempo does.
    pub hints: Vec<Hint>,
}

/// Stages joined by `|`: each stage takes the spansets the previous one kept. Never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The stages, first to last.
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// Calls `visit` on every per-span expression of the pipeline and of the pipelines inside it
    /// (spanset conditions, aggregate arguments, `by` and `select` fields), and on each of their
    /// sub-expressions, parents before children. For questions about a whole query: which columns it
    /// reads, whether its regular expressions compile.
    pub fn visit_fields<E>(&self, visit: &mut impl FnMut(&FieldExpr) -> Result<(), E>) -> Result<(), E> {
        for stage in &self.stages {
            match stage {
                Stage::Spanset(expr) => expr.visit_fields(visit)?,
                Stage::ScalarFilter(filter) => {
                    filter.left.visit_fields(visit)?;
                    filter.right.visit_fields(visit)?;
                }
                Stage::By(fields) | Stage::Select(fields) => {
                    for field in fields {
                        field.visit(visit)?;
                    }
                }
                Stage::Coalesce => {}
            }
        }
        Ok(())
    }
}

impl SpansetExpr {
    fn visit_fields<E>(&self, visit: &mut impl FnMut(&FieldExpr) -> Result<(), E>) -> Result<(), E> {
        match self {
            SpansetExpr::Filter { condition: Some(condition), .. } => condition.visit(visit),
            SpansetExpr::Filter { condition: None, .. } => Ok(()),
            SpansetExpr::Binary { left, right, .. } => {
                left.visit_fields(visit)?;
                right.visit_fields(visit)
            }
            SpansetExpr::Pipeline(pipeline) => pipeline.visit_fields(visit),
        }
    }
}

impl ScalarExpr {
    fn visit_fields<E>(&self, visit: &mut impl FnMut(&FieldExpr) -> Result<(), E>) -> Result<(), E> {
        match self {
            ScalarExpr::Aggregate(Aggregate { argument: Some(argument), .. }) => argument.visit(visit),
            ScalarExpr::Aggregate(Aggregate { argument: None, .. }) | ScalarExpr::Static(..) => Ok(()),
            ScalarExpr::Binary { left, right, .. } => {
                left.visit_fields(visit)?;
                right.visit_fields(visit)
            }
        }
    }
}

impl FieldExpr {
    /// Calls `visit` on this expression and each of its sub-expressions, parents first.
    pub fn visit<E>(&self, visit: &mut impl FnMut(&FieldExpr) -> Result<(), E>) -> Result<(), E> {
        visit(self)?;
        match &self.kind {
            FieldKind::Unary(_, inner) => inner.visit(visit),
            FieldKind::Binary(_, left, right) => {
                left.visit(visit)?;
                right.visit(visit)
            }
            FieldKind::Static(_) | FieldKind::Attribute(_) | FieldKind::Intrinsic(_) => Ok(()),
        }
    }
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Spanset filters combined with spanset operators: `{…} >> {…}`.
    Spanset(SpansetExpr),
    /// Keeps spansets whose aggregate passes: `count() > 2`.
    ScalarFilter(ScalarFilter),
    /// `by(expr, …)`: regroups spans into spansets by the values of the expressions.
    By(Vec<FieldExpr>),
    /// `select(attribute, …)`: asks for more attributes of the matched spans in the answer.
    Select(Vec<FieldExpr>),
    /// `coalesce()`: merges the spansets of a trace back into one.
    Coalesce,
}

/// Spansets and the operators between them.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ condition }`; `{}` (no condition) matches every span.
    Filter {
        /// The per-span condition; `None` for `{}`.
        condition: Option<FieldExpr>,
        /// From `{` to `}`.
        span: Span,
    },
    /// Two spansets combined: `&&`, `||`, structural (`>>`, `!<`, `&~`, …).
    Binary {
        /// The operator.
        op: SpansetOp,
        /// Left operand.
        left: Box<SpansetExpr>,
        /// Right operand.
        right: Box<SpansetExpr>,
    },
    /// A parenthesised pipeline used as an operand: `({…} | count() > 1) && {…}`.
    Pipeline(Box<Pipeline>),
}

/// Operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    /// `&&`: both spansets match in the trace.
    And,
    /// `||`: either matches.
    Or,
    /// `>`: right spans that are children of left spans.
    Child,
    /// `<`: right spans that are parents of left spans.
    Parent,
    /// `>>`: descendants.
    Descendant,
    /// `<<`: ancestors.
    Ancestor,
    /// `~`: siblings.
    Sibling,
    /// `!>`: right spans that are not children of left spans.
    NotChild,
    /// `!<`
    NotParent,
    /// `!>>`
    NotDescendant,
    /// `!<<`
    NotAncestor,
    /// `!~`
    NotSibling,
    /// `&>`: both sides of the child relation are kept.
    UnionChild,
    /// `&<`
    UnionParent,
    /// `&>>`
    UnionDescendant,
    /// `&<<`
    UnionAncestor,
    /// `&~`
    UnionSibling,
}

impl SpansetOp {
    /// Every operator, for tests and generators.
    pub const ALL: [SpansetOp; 17] = [
        SpansetOp::And,
        SpansetOp::Or,
        SpansetOp::Child,
        SpansetOp::Parent,
        SpansetOp::Descendant,
        SpansetOp::Ancestor,
        SpansetOp::Sibling,
        SpansetOp::NotChild,
        SpansetOp::NotParent,
        SpansetOp::NotDescendant,
        SpansetOp::NotAncestor,
        SpansetOp::NotSibling,
        SpansetOp::UnionChild,
        SpansetOp::UnionParent,
        SpansetOp::UnionDescendant,
        SpansetOp::UnionAncestor,
        SpansetOp::UnionSibling,
    ];

    /// The operator's text.
    pub fn symbol(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Or => "||",
            SpansetOp::Child => ">",
            SpansetOp::Parent => "<",
            SpansetOp::Descendant => ">>",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Sibling => "~",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotParent => "!<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotSibling => "!~",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionParent => "&<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionSibling => "&~",
        }
    }

    /// Binding strength: `&&`/`||` bind looser than the structural operators, as in Tempo.
    pub fn precedence(self) -> u8 {
        match self {
            SpansetOp::And | SpansetOp::Or => 1,
            _ => 2,
        }
    }
}

/// `aggregate op aggregate-or-value`, e.g. `avg(duration) > 1s`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarFilter {
    /// A comparison operator.
    pub op: BinaryOp,
    /// Left side.
    pub left: ScalarExpr,
    /// Right side.
    pub right: ScalarExpr,
}

/// Arithmetic over aggregates and values, evaluated once per spanset.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    /// `count()`, `avg(x)`, …
    Aggregate(Aggregate),
    /// A literal.
    Static(Static, Span),
    /// Arithmetic between two scalar expressions.
    Binary {
        /// An arithmetic operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<ScalarExpr>,
        /// Right operand.
        right: Box<ScalarExpr>,
    },
}

/// An aggregate over the spans of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Which aggregate.
    pub function: AggregateFunction,
    /// The per-span value aggregated; `None` only for `count()`.
    pub argument: Option<FieldExpr>,
    /// From the function name to `)`.
    pub span: Span,
}

/// The aggregates TraceQL has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `count()`
    Count,
    /// `avg(x)`
    Avg,
    /// `min(x)`
    Min,
    /// `max(x)`
    Max,
    /// `sum(x)`
    Sum,
}

impl AggregateFunction {
    /// The function's name in TraceQL.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Avg => "avg",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::Sum => "sum",
        }
    }
}

/// A per-span expression: the inside of `{ … }`, the argument of an aggregate or `by`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldExpr {
    /// What the expression is.
    pub kind: FieldKind,
    /// Where it was written.
    pub span: Span,
}

/// The forms of a per-span expression.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// A literal.
    Static(Static),
    /// A span's attribute.
    Attribute(Attribute),
    /// A built-in field of the span, trace, event, link or scope.
    Intrinsic(Intrinsic),
    /// `-x` or `!x`.
    Unary(UnaryOp, Box<FieldExpr>),
    /// `x op y`.
    Binary(BinaryOp, Box<FieldExpr>, Box<FieldExpr>),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-`: negation.
    Neg,
    /// `!`: logical not.
    Not,
}

/// Infix operators of per-span and scalar expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `&&`
    And,
    /// `||`
    Or,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
}

impl BinaryOp {
    /// Every operator, for tests and generators.
    pub const ALL: [BinaryOp; 16] = [
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Eq,
        BinaryOp::Neq,
        BinaryOp::Gt,
        BinaryOp::Gte,
        BinaryOp::Lt,
        BinaryOp::Lte,
        BinaryOp::Regex,
        BinaryOp::NotRegex,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Mod,
        BinaryOp::Pow,
    ];

    /// The operator's text.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
            BinaryOp::Eq => "=",
            BinaryOp::Neq => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Regex => "=~",
            BinaryOp::NotRegex => "!~",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
        }
    }

    /// Binding strength, Tempo's: `&& ||` < comparisons < `+ -` < (`!`) < `* / %` < `^`.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::And | BinaryOp::Or => 1,
            BinaryOp::Eq
            | BinaryOp::Neq
            | BinaryOp::Gt
            | BinaryOp::Gte
            | BinaryOp::Lt
            | BinaryOp::Lte
            | BinaryOp::Regex
            | BinaryOp::NotRegex => 2,
            BinaryOp::Add | BinaryOp::Sub => 3,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
            BinaryOp::Pow => 6,
        }
    }

    /// `^` groups to the right (`2^3^2` is `2^(3^2)`); the rest to the left.
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }

    /// Comparisons, the operators a scalar filter may use.
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Neq | BinaryOp::Gt | BinaryOp::Gte | BinaryOp::Lt | BinaryOp::Lte)
    }

    /// Arithmetic, the operators between scalar expressions.
    pub fn is_arithmetic(self) -> bool {
        self.precedence() >= 3
    }
}

impl UnaryOp {
    /// How tightly the operator binds its operand, on [`BinaryOp::precedence`]'s scale: `-a * b` is
    /// `-(a * b)` and `!a + b` is `(!a) + b`, as in Tempo's grammar.
    pub fn precedence(self) -> u8 {
        match self {
            UnaryOp::Neg => 3,
            UnaryOp::Not => 4,
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    /// `nil`: the attribute is absent (`x = nil`) or present (`x != nil`).
    Nil,
    /// `true`, `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float; always finite.
    Float(f64),
    /// A string.
    Str(String),
    /// A duration.
    Duration(std::time::Duration),
    /// `ok`, `error`, `unset`.
    Status(Status),
    /// `unspecified`, `internal`, `server`, `client`, `producer`, `consumer`.
    Kind(Kind),
}

/// A span's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `ok`
    Ok,
    /// `error`
    Error,
    /// `unset`
    Unset,
}

/// A span's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `unspecified`
    Unspecified,
    /// `internal`
    Internal,
    /// `server`
    Server,
    /// `client`
    Client,
    /// `producer`
    Producer,
    /// `consumer`
    Consumer,
}

/// Whose attribute an attribute reference reads.
impl Status {
    /// The keyword, as TraceQL writes it and as the `status_code` column stores it.
    pub fn keyword(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Unset => "unset",
        }
    }
}

impl Kind {
    /// The keyword, as TraceQL writes it and as the `kind` column stores it.
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// `.name`: the span's or its resource's.
    None,
    /// `span.name`
    Span,
    /// `resource.name`
    Resource,
    /// `event.name`
    Event,
    /// `link.name`
    Link,
    /// `instrumentation.name`
    Instrumentation,
}

/// An attribute reference such as `resource.service.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Whose attribute.
    pub scope: AttributeScope,
    /// `parent.`: the attribute of the span's parent (only with no scope, `span` or `resource`).
    pub parent: bool,
    /// The name, unescaped; may contain dots and any character.
    pub name: String,
}

/// Built-in fields, one variant per meaning: `duration` and `span:duration` are the same field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// `span:name`, `name`
    Name,
    /// `span:status`, `status`
    Status,
    /// `span:statusMessage`, `statusMessage`
    StatusMessage,
    /// `span:kind`, `kind`
    Kind,
    /// `span:duration`, `duration`
    Duration,
    /// `span:id`
    SpanId,
    /// `span:parentID`
    ParentId,
    /// `span:childCount`
    ChildCount,
    /// `trace:id`
    TraceId,
    /// `trace:duration`, `traceDuration`
    TraceDuration,
    /// `trace:rootName`, `rootName`
    TraceRootName,
    /// `trace:rootService`, `rootServiceName`
    TraceRootService,
    /// `event:name`
    EventName,
    /// `event:timeSinceStart`
    EventTimeSinceStart,
    /// `link:traceID`
    LinkTraceId,
    /// `link:spanID`
    LinkSpanId,
    /// `instrumentation:name`
    InstrumentationName,
    /// `instrumentation:version`
    InstrumentationVersion,
    /// `nestedSetParent`
    NestedSetParent,
    /// `nestedSetLeft`
    NestedSetLeft,
    /// `nestedSetRight`
    NestedSetRight,
    /// `parent`
    Parent,
}

impl Intrinsic {
    /// Every intrinsic, for tests and generators.
    pub const ALL: [Intrinsic; 22] = [
        Intrinsic::Name,
        Intrinsic::Status,
        Intrinsic::StatusMessage,
        Intrinsic::Kind,
        Intrinsic::Duration,
        Intrinsic::SpanId,
        Intrinsic::ParentId,
        Intrinsic::ChildCount,
        Intrinsic::TraceId,
        Intrinsic::TraceDuration,
        Intrinsic::TraceRootName,
        Intrinsic::TraceRootService,
        Intrinsic::EventName,
        Intrinsic::EventTimeSinceStart,
        Intrinsic::LinkTraceId,
        Intrinsic::LinkSpanId,
        Intrinsic::InstrumentationName,
        Intrinsic::InstrumentationVersion,
        Intrinsic::NestedSetParent,
        Intrinsic::NestedSetLeft,
        Intrinsic::NestedSetRight,
        Intrinsic::Parent,
    ];

    /// The canonical spelling: the scoped (colon) form where there is one, as Tempo recommends.
    pub fn canonical(self) -> &'static str {
        match self {
            Intrinsic::Name => "span:name",
            Intrinsic::Status => "span:status",
            Intrinsic::StatusMessage => "span:statusMessage",
            Intrinsic::Kind => "span:kind",
            Intrinsic::Duration => "span:duration",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::ChildCount => "span:childCount",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::TraceDuration => "trace:duration",
            Intrinsic::TraceRootName => "trace:rootName",
            Intrinsic::TraceRootService => "trace:rootService",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
            Intrinsic::NestedSetParent => "nestedSetParent",
            Intrinsic::NestedSetLeft => "nestedSetLeft",
            Intrinsic::NestedSetRight => "nestedSetRight",
            Intrinsic::Parent => "parent",
        }
    }

    /// The intrinsic written `scope:name`, if there is one.
    pub fn from_scoped(written: &str) -> Option<Intrinsic> {
        Intrinsic::ALL.into_iter().find(|intrinsic| intrinsic.canonical() == written && written.contains(':'))
    }

    /// The intrinsic written as a bare word (`duration`, `rootServiceName`, …), if there is one.
    pub fn from_word(word: &str) -> Option<Intrinsic> {
        let intrinsic = match word {
            "name" => Intrinsic::Name,
            "status" => Intrinsic::Status,
            "statusMessage" => Intrinsic::StatusMessage,
            "kind" => Intrinsic::Kind,
            "duration" => Intrinsic::Duration,
            "traceDuration" => Intrinsic::TraceDuration,
            "rootName" => Intrinsic::TraceRootName,
            "rootServiceName" => Intrinsic::TraceRootService,
            "nestedSetParent" => Intrinsic::NestedSetParent,
            "nestedSetLeft" => Intrinsic::NestedSetLeft,
            "nestedSetRight" => Intrinsic::NestedSetRight,
            "parent" => Intrinsic::Parent,
            _ => return None,
        };
        Some(intrinsic)
    }
}

impl std::fmt::Display for Intrinsic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.canonical())
    }
}

/// One `key = value` of `with(…)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// The hint's name, e.g. `most_recent`.
    pub key: String,
    /// Its value.
    pub value: Static,
}
