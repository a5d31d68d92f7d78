//! The language's specification as tables: queries with their canonical form, refused queries with
//! the error they get; then round trips and robustness properties.

use proptest::prelude::*;

use super::ast::*;
use super::parser::MAX_DEPTH;
use super::{TraceqlError, check, parse};

/// (query, its canonical printed form). Every construct of the language appears at least once.
const ACCEPTED: &[(&str, &str)] = &[
    // Grafana's shapes.
    (
        r#"{resource.service.name="a" && name="b" && status=error && duration>100ms}"#,
        r#"{ resource.service.name = "a" && span:name = "b" && span:status = error && span:duration > 100ms }"#,
    ),
    (r#"{(span.x="a" || span.x="b")}"#, r#"{ span.x = "a" || span.x = "b" }"#),
    (r#"{span.x=~"a|b"}"#, r#"{ span.x =~ "a|b" }"#),
    ("{traceDuration > 1s}", "{ trace:duration > 1s }"),
    (
        r#"{resource.service.name="frontend"} >> {status=error}"#,
        r#"{ resource.service.name = "frontend" } >> { span:status = error }"#,
    ),
    ("{} | select(span.http.method) with(most_recent=true)", "{} | select(span.http.method) with(most_recent = true)"),
    // Empty filters.
    ("{}", "{}"),
    ("{ }", "{}"),
    // Unscoped intrinsics print in their scoped form.
    (r#"{ name = "GET /" }"#, r#"{ span:name = "GET /" }"#),
    (r#"{ statusMessage != "" }"#, r#"{ span:statusMessage != "" }"#),
    ("{ kind = server }", "{ span:kind = server }"),
    (r#"{ rootName = "a" }"#, r#"{ trace:rootName = "a" }"#),
    (r#"{ rootServiceName = "a" }"#, r#"{ trace:rootService = "a" }"#),
    ("{ nestedSetParent = -1 }", "{ nestedSetParent = -1 }"),
    ("{ nestedSetLeft > 3 && nestedSetRight < 10 }", "{ nestedSetLeft > 3 && nestedSetRight < 10 }"),
    ("{ parent != nil }", "{ parent != nil }"),
    // Scoped intrinsics.
    (r#"{ span:name = "a" }"#, r#"{ span:name = "a" }"#),
    ("{ span:duration >= 1.5s }", "{ span:duration >= 1500ms }"),
    ("{ span:status = ok }", "{ span:status = ok }"),
    (r#"{ span:statusMessage =~ "time.*" }"#, r#"{ span:statusMessage =~ "time.*" }"#),
    ("{ span:kind != client }", "{ span:kind != client }"),
    (r#"{ span:id = "0123456789abcdef" }"#, r#"{ span:id = "0123456789abcdef" }"#),
    (r#"{ span:parentID = "00" }"#, r#"{ span:parentID = "00" }"#),
    (r#"{ trace:id = "abc" }"#, r#"{ trace:id = "abc" }"#),
    (r#"{ trace:rootName = "x" }"#, r#"{ trace:rootName = "x" }"#),
    (r#"{ trace:rootService = "x" }"#, r#"{ trace:rootService = "x" }"#),
    ("{ trace:duration < 2m }", "{ trace:duration < 2m }"),
    (r#"{ event:name = "exception" }"#, r#"{ event:name = "exception" }"#),
    ("{ event:timeSinceStart > 10us }", "{ event:timeSinceStart > 10us }"),
    (r#"{ link:traceID = "a" }"#, r#"{ link:traceID = "a" }"#),
    (r#"{ link:spanID = "b" }"#, r#"{ link:spanID = "b" }"#),
    (r#"{ instrumentation:name = "otel" }"#, r#"{ instrumentation:name = "otel" }"#),
    (r#"{ instrumentation:version = "1.0" }"#, r#"{ instrumentation:version = "1.0" }"#),
    // Attributes: scopes, parent, dotted and quoted names, nil.
    (r#"{ parent.span.http.method = "GET" }"#, r#"{ parent.span.http.method = "GET" }"#),
    (r#"{ parent.resource.service.name = "a" }"#, r#"{ parent.resource.service.name = "a" }"#),
    ("{ parent.foo = 1 }", "{ parent.foo = 1 }"),
    (r#"{ .foo = "bar" }"#, r#"{ .foo = "bar" }"#),
    ("{ span.http.status_code >= 500 }", "{ span.http.status_code >= 500 }"),
    (r#"{ resource.k8s.namespace = "prod" }"#, r#"{ resource.k8s.namespace = "prod" }"#),
    (r#"{ event.exception.type = "x" }"#, r#"{ event.exception.type = "x" }"#),
    (r#"{ link.foo = "x" }"#, r#"{ link.foo = "x" }"#),
    (r#"{ instrumentation.lib = "x" }"#, r#"{ instrumentation.lib = "x" }"#),
    (r#"{ span."with space" = "x" }"#, r#"{ span."with space" = "x" }"#),
    (r#"{ span."a\"b\\c" = 1 }"#, r#"{ span."a\"b\\c" = 1 }"#),
    (r#"{ span.a."b c" = 1 }"#, r#"{ span."a.b c" = 1 }"#),
    ("{ span.foo-bar = 1 }", "{ span.foo-bar = 1 }"),
    ("{ span.foo != nil }", "{ span.foo != nil }"),
    ("{ .foo = nil }", "{ .foo = nil }"),
    // Operators and precedence (&& and || share a level, as in Tempo).
    ("{ span.a != 1 && span.b <= 2.5 }", "{ span.a != 1 && span.b <= 2.5 }"),
    (r#"{ span.a !~ "x" }"#, r#"{ span.a !~ "x" }"#),
    ("{ !(span.a = 1) }", "{ !(span.a = 1) }"),
    ("{ !span.flag }", "{ !span.flag }"),
    ("{ !!span.flag }", "{ !!span.flag }"),
    ("{ - -span.a = 1 }", "{ --span.a = 1 }"),
    ("{ span.a + 2 * 3 = 7 }", "{ span.a + 2 * 3 = 7 }"),
    ("{ (span.a + 2) * 3 = 7 }", "{ (span.a + 2) * 3 = 7 }"),
    ("{ span.a - 1 - 2 = 0 }", "{ span.a - 1 - 2 = 0 }"),
    ("{ span.a - (1 - 2) = 0 }", "{ span.a - (1 - 2) = 0 }"),
    ("{ 2 ^ 3 ^ 2 = span.a }", "{ 2 ^ 3 ^ 2 = span.a }"),
    ("{ (2 ^ 3) ^ 2 = span.a }", "{ (2 ^ 3) ^ 2 = span.a }"),
    ("{ span.a % 2 = 0 && span.b / 2 > 1 }", "{ span.a % 2 = 0 && span.b / 2 > 1 }"),
    ("{ -span.a < 0 }", "{ -span.a < 0 }"),
    ("{ .a || .b && .c }", "{ .a || .b && .c }"),
    ("{ .a || (.b && .c) }", "{ .a || (.b && .c) }"),
    ("{ span.a>=1&&span.b<=2||span.c>3 }", "{ span.a >= 1 && span.b <= 2 || span.c > 3 }"),
    // Values: strings with escapes and backticks, numbers, booleans, durations, keywords.
    (r#"{ span.s = "tab\tq\"uote\\" }"#, r#"{ span.s = "tab\tq\"uote\\" }"#),
    ("{ span.s = `raw\\n\"` }", r#"{ span.s = "raw\\n\"" }"#),
    (r#"{ span.s = "\u00e9" }"#, r#"{ span.s = "é" }"#),
    ("{ span.b = true || span.b = false }", "{ span.b = true || span.b = false }"),
    ("{ span.f = 1e3 }", "{ span.f = 1000.0 }"),
    ("{ span.f > 0.5 }", "{ span.f > 0.5 }"),
    ("{ duration > 1ns }", "{ span:duration > 1ns }"),
    ("{ duration > 2us }", "{ span:duration > 2us }"),
    ("{ duration > 3µs }", "{ span:duration > 3us }"),
    ("{ duration > 4ms }", "{ span:duration > 4ms }"),
    ("{ duration > 6m }", "{ span:duration > 6m }"),
    ("{ duration > 7h }", "{ span:duration > 7h }"),
    ("{ duration > 1d }", "{ span:duration > 24h }"),
    ("{ duration > 1h30m }", "{ span:duration > 90m }"),
    ("{ trace:duration < 1w }", "{ trace:duration < 168h }"),
    ("{ status = unset || kind = unspecified }", "{ span:status = unset || span:kind = unspecified }"),
    (
        "{ kind = internal || kind = producer || kind = consumer }",
        "{ span:kind = internal || span:kind = producer || span:kind = consumer }",
    ),
    // Spanset operators.
    ("{ .a = 1 } && { .b = 2 }", "{ .a = 1 } && { .b = 2 }"),
    ("{ .a = 1 } || { .b = 2 }", "{ .a = 1 } || { .b = 2 }"),
    ("{ .a = 1 } > { .b = 2 }", "{ .a = 1 } > { .b = 2 }"),
    ("{ .a = 1 } < { .b = 2 }", "{ .a = 1 } < { .b = 2 }"),
    ("{ .a = 1 } << { .b = 2 }", "{ .a = 1 } << { .b = 2 }"),
    ("{ .a = 1 } ~ { .b = 2 }", "{ .a = 1 } ~ { .b = 2 }"),
    ("{ .a = 1 } !> { .b = 2 }", "{ .a = 1 } !> { .b = 2 }"),
    ("{ .a = 1 } !>> { .b = 2 }", "{ .a = 1 } !>> { .b = 2 }"),
    ("{ .a = 1 } !< { .b = 2 }", "{ .a = 1 } !< { .b = 2 }"),
    ("{ .a = 1 } !<< { .b = 2 }", "{ .a = 1 } !<< { .b = 2 }"),
    ("{ .a = 1 } !~ { .b = 2 }", "{ .a = 1 } !~ { .b = 2 }"),
    ("{ .a = 1 }&>{ .b = 2 }", "{ .a = 1 } &> { .b = 2 }"),
    ("{ .a = 1 } &>> { .b = 2 }", "{ .a = 1 } &>> { .b = 2 }"),
    ("{ .a = 1 } &< { .b = 2 }", "{ .a = 1 } &< { .b = 2 }"),
    ("{ .a = 1 } &<< { .b = 2 }", "{ .a = 1 } &<< { .b = 2 }"),
    ("{ .a = 1 } &~ { .b = 2 }", "{ .a = 1 } &~ { .b = 2 }"),
    ("({ .a = 1 } && { .b = 2 }) >> { .c = 3 }", "({ .a = 1 } && { .b = 2 }) >> { .c = 3 }"),
    ("{ .a = 1 } && { .b = 2 } >> { .c = 3 }", "{ .a = 1 } && { .b = 2 } >> { .c = 3 }"),
    ("(({ .a = 1 }))", "{ .a = 1 }"),
    // Pipelines, aggregates, grouping, selection, hints.
    ("{} | count() > 2", "{} | count() > 2"),
    ("{} | avg(duration) > 1s", "{} | avg(span:duration) > 1s"),
    (
        "{} | min(span.a) <= 1 | max(span.a) >= 2 | sum(span.a) != 3",
        "{} | min(span.a) <= 1 | max(span.a) >= 2 | sum(span.a) != 3",
    ),
    ("{} | by(resource.service.name)", "{} | by(resource.service.name)"),
    ("{} | by(span.a, span.b)", "{} | by(span.a, span.b)"),
    ("{} | select(span.a, span:name)", "{} | select(span.a, span:name)"),
    ("{} | coalesce()", "{} | coalesce()"),
    (
        "{ status = error } | by(resource.service.name) | count() > 1 | coalesce()",
        "{ span:status = error } | by(resource.service.name) | count() > 1 | coalesce()",
    ),
    ("({ .a = 1 } | count() > 1) && { .b = 2 }", "({ .a = 1 } | count() > 1) && { .b = 2 }"),
    ("{} | { .a = 1 } && { .b = 2 }", "{} | { .a = 1 } && { .b = 2 }"),
    ("{} | count() + 1 > 2 * 3", "{} | count() + 1 > 2 * 3"),
    ("{} | (count() + 1) * 2 > 4", "{} | (count() + 1) * 2 > 4"),
    ("{} | 5 < count()", "{} | 5 < count()"),
    ("{} with(most_recent=true, sample=0.5)", "{} with(most_recent = true, sample = 0.5)"),
    ("{} with(a=1) with(b=\"x\")", "{} with(a = 1, b = \"x\")"),
    ("{\n  span.a = 1\n}", "{ span.a = 1 }"),
];

/// (refused query, a piece of the error). Syntax errors first, then what validation refuses.
const REFUSED: &[(&str, &str)] = &[
    ("{ span.x = }", r#"1:12: expected a value after "=", found "}""#),
    ("{", "found the end of the query"),
    ("{ span.a = 1", r#"expected an operator or "}""#),
    ("{ span. = 1 }", "expected an attribute name"),
    ("{ span:foo = 1 }", r#"unknown intrinsic "span:foo""#),
    ("{ foo = 1 }", r#"unknown identifier "foo""#),
    (r#"{ span.a = "abc }"#, "unterminated string"),
    ("{ span.a = 5x }", r#"unknown duration unit "x""#),
    ("{ span.a = 99999999999999999999 }", "out of range"),
    (r#"{ span.a = "\q" }"#, "unknown escape"),
    ("{} | count()", "expected a comparison"),
    ("{} | count(span.a) > 1", "count takes no argument"),
    ("{} | coalesce(1)", "coalesce takes no arguments"),
    ("{} >", r#"expected "{" or "(""#),
    ("{} with(most_recent)", r#"expected "=""#),
    ("{ span.a = 1 } }", r#"expected "|", an operator or the end of the query"#),
    ("{ span.a = 1 } #", "unexpected character '#'"),
    (r#"name = "a""#, r#"expected "{", an aggregate"#),
    ("{ span.a = 1 }\n| coun() > 1", "2:3: expected"),
    ("{ .a = 1 && 2 }", r#"1:3: .a = 1 && 2: "&&" does not apply to an integer"#),
    ("{ status = 1 }", "1:3: span:status = 1: cannot compare or combine a status with an integer"),
    (r#"{ duration = "1s" }"#, "cannot compare or combine a duration with a string"),
    ("{ kind = ok }", "cannot compare or combine a kind with a status"),
    ("{ span.a =~ 1 }", r#""=~" does not apply to an integer"#),
    (r#"{ duration =~ "x" }"#, r#""=~" does not apply to a duration"#),
    ("{ span.a =~ span.b }", "must be a string pattern"),
    (r#"{ span.a =~ "(a" }"#, "invalid regular expression"),
    (r#"{ span.a !~ "*a" }"#, "nothing to repeat"),
    ("{} | avg(name) > 1", "needs a number"),
    ("{} | avg(1) > 1", "must refer to an attribute"),
    (r#"{} | count() > "a""#, "scalar filters compare numbers"),
    (r#"{ name = nil }"#, "cannot be compared with nil"),
    (r#"{ resource.service.name = nil }"#, "it always exists"),
    ("{ 1 }", "a spanset filter needs a condition"),
    (r#"{ -name = "a" }"#, "cannot apply the prefix to a string"),
    ("{ .a = 1 } | select(1)", "select takes attributes"),
    ("{} | by(1)", "must refer to an attribute"),
    ("{ status > ok }", r#"">" does not apply to a status"#),
    (r#"{ span.a + "x" = 1 }"#, r#""+" does not apply to a string"#),
    ("{} | 1 > 2", "compares no aggregate"),
    (r#"({ .a = 1 } | count() > "x") && {}"#, "scalar filters compare numbers"),
    ("{} | ({ status = 1 } | by(.a))", "1:9: span:status = 1: cannot compare or combine a status with an integer"),
    ("{ .a = 1 } | select(span.a + 1)", "select takes attributes"),
    ("{ .a = 1 } with(x=1", r#"expected "," or ")""#),
    ("{ `unterminated }", "unterminated `string`"),
    (r#"{ span."open = 1 }"#, "unterminated quoted attribute name"),
];

#[test]
fn every_accepted_query_checks_and_prints_canonically() {
    assert!(ACCEPTED.len() >= 60, "{} accepted queries", ACCEPTED.len());
    for (query, canonical) in ACCEPTED {
        let parsed = check(query).unwrap_or_else(|error| panic!("{query}: {error}"));
        assert_eq!(parsed.to_string(), *canonical, "printing {query}");
    }
}

#[test]
fn printing_then_parsing_gives_the_same_tree_and_the_same_text() {
    for (query, _) in ACCEPTED {
        let parsed = parse(query).unwrap();
        let printed = parsed.to_string();
        let reparsed = parse(&printed).unwrap_or_else(|error| panic!("{printed}: {error}"));
        assert_eq!(reparsed, parsed, "{query} printed as {printed}");
        assert_eq!(reparsed.to_string(), printed, "printing is stable for {query}");
    }
}

#[test]
fn every_refused_query_names_its_problem_and_position() {
    assert!(REFUSED.len() >= 20, "{} refused queries", REFUSED.len());
    for (query, expected) in REFUSED {
        let error = check(query).expect_err(query).to_string();
        assert!(error.contains(expected), "{query}: got {error:?}, expected {expected:?}");
    }
}

#[test]
fn an_average_duration_may_be_compared_with_a_plain_number() {
    // Numbers and durations are interchangeable in comparisons, as in Tempo (durations are numbers).
    check("{} | avg(duration) > 1").unwrap();
    check("{ duration > 100 }").unwrap();
}

#[test]
fn syntax_and_type_errors_are_told_apart() {
    assert!(matches!(check("{ .a = }"), Err(TraceqlError::Syntax { .. })));
    assert!(matches!(check("{ status = 1 }"), Err(TraceqlError::Invalid { .. })));
    // Parsing alone does not check types: the planner may parse first and check later.
    assert!(parse("{ status = 1 }").is_ok());
}

#[test]
fn by_takes_several_expressions_where_tempo_takes_one() {
    let query = check("{} | by(resource.service.name, span:name)").unwrap();
    let Stage::By(expressions) = &query.pipeline.stages[1] else {
        panic!("expected by");
    };
    assert_eq!(expressions.len(), 2);
}

#[test]
fn syntax_errors_say_line_column_and_byte_offset() {
    let Err(TraceqlError::Syntax { position, .. }) = parse("{ .a = 1 }\n  && { .b = }") else {
        panic!("expected a syntax error");
    };
    assert_eq!((position.line, position.column, position.offset), (2, 13, 23));
}

#[test]
fn regex_structure_check_accepts_what_regex_engines_accept() {
    use super::validate::check_regex_structure;
    for good in ["a|b", "time.*", "(?i)get", "a*?", "[a-z]+", r"\d{2,3}", "[]a]", "[^]a]", "^$", r"a\.b", "(a)(b)"] {
        assert_eq!(check_regex_structure(good), Ok(()), "{good}");
    }
    for bad in ["(a", "a)", "[a", "*a", "a\\", "(*)"] {
        assert!(check_regex_structure(bad).is_err(), "{bad}");
    }
}

#[test]
fn nil_comparisons_are_existence_tests_and_parse_as_written() {
    let query = parse("{ span.foo != nil }").unwrap();
    let Stage::Spanset(SpansetExpr::Filter { condition: Some(condition), .. }) = &query.pipeline.stages[0] else {
        panic!("expected a filter");
    };
    let FieldKind::Binary(BinaryOp::Neq, _, right) = &condition.kind else {
        panic!("expected !=");
    };
    assert_eq!(right.kind, FieldKind::Static(Static::Nil));
}

#[test]
fn and_and_or_share_a_precedence_level_and_group_to_the_left_as_in_tempo() {
    assert_eq!(parse("{ .a || .b && .c }").unwrap(), parse("{ (.a || .b) && .c }").unwrap());
    assert_ne!(parse("{ .a || .b && .c }").unwrap(), parse("{ .a || (.b && .c) }").unwrap());
}

#[test]
fn structural_operators_bind_tighter_than_spanset_and_or() {
    assert_eq!(parse("{} && {} >> {}").unwrap(), parse("{} && ({} >> {})").unwrap());
}

#[test]
fn deep_nesting_is_refused_instead_of_overflowing_the_stack() {
    let deep_inputs = [
        "(".repeat(100_000),
        format!("{{{}", "(".repeat(100_000)),
        format!("{{ {} }}", "!".repeat(100_000)),
        format!("{{ {} }}", "-".repeat(100_000)),
        format!("{{ .a{} }}", " + .a".repeat(100_000)),
        format!("{{ .a{} }}", " ^ .a".repeat(100_000)),
        format!("{{}}{}", " && {}".repeat(100_000)),
        format!("{{}} | {}count() > 1", "(".repeat(100_000)),
    ];
    for input in &deep_inputs {
        match parse(input) {
            Err(TraceqlError::TooDeep { limit, .. }) => assert_eq!(limit, MAX_DEPTH),
            other => panic!("{}…: {other:?}", &input[..20]),
        }
    }
}

#[test]
fn a_long_but_reasonable_chain_of_conditions_parses() {
    let conditions: Vec<String> = (0..100).map(|index| format!("span.a{index} = {index}")).collect();
    let query = format!("{{ {} }}", conditions.join(" && "));
    let parsed = check(&query).unwrap();
    assert_eq!(parse(&parsed.to_string()).unwrap(), parsed);
}

// ---- properties ----

const SOUP: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "|",
    ",",
    "=",
    "!=",
    "=~",
    "!~",
    ">",
    ">>",
    "<",
    "<<",
    "~",
    "!>",
    "&>",
    "&&",
    "||",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    ".a",
    "span.b",
    "resource.",
    "parent.",
    "span:name",
    "span:",
    "name",
    "duration",
    "count",
    "avg",
    "by",
    "select",
    "coalesce",
    "with",
    "nil",
    "ok",
    "server",
    "1",
    "2.5",
    "1s",
    "1.5ms",
    "\"x\"",
    "`y`",
    "\"",
    "`",
    "\\",
    "µ",
    "true",
    "most_recent",
    "1e",
    "99999999999999999999",
];

fn token_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec((proptest::sample::select(SOUP), any::<bool>()), 0..40).prop_map(|parts| {
        parts.into_iter().map(|(part, space)| if space { format!("{part} ") } else { part.to_string() }).collect()
    })
}

fn static_value() -> impl Strategy<Value = Static> {
    prop_oneof![
        Just(Static::Nil),
        any::<bool>().prop_map(Static::Bool),
        (0..i64::MAX).prop_map(Static::Int),
        (0.0f64..1e20).prop_map(Static::Float),
        any::<String>().prop_map(Static::Str),
        any::<u64>().prop_map(|nanos| Static::Duration(std::time::Duration::from_nanos(nanos))),
        proptest::sample::select(vec![Status::Ok, Status::Error, Status::Unset]).prop_map(Static::Status),
        proptest::sample::select(vec![Kind::Unspecified, Kind::Internal, Kind::Server, Kind::Consumer])
            .prop_map(Static::Kind),
    ]
}

fn attribute() -> impl Strategy<Value = Attribute> {
    let scopes = vec![
        AttributeScope::None,
        AttributeScope::Span,
        AttributeScope::Resource,
        AttributeScope::Event,
        AttributeScope::Link,
        AttributeScope::Instrumentation,
    ];
    let names = prop_oneof![any::<String>(), "[a-z][a-z._-]{0,12}", "(span|resource)\\.[a-z]{1,4}"];
    (proptest::sample::select(scopes), any::<bool>(), names).prop_map(|(scope, parent, name)| {
        let parent = parent && matches!(scope, AttributeScope::None | AttributeScope::Span | AttributeScope::Resource);
        Attribute { scope, parent, name }
    })
}

fn field(kind: FieldKind) -> FieldExpr {
    FieldExpr { kind, span: Span::default() }
}

fn field_expr() -> impl Strategy<Value = FieldExpr> {
    let leaf = prop_oneof![
        static_value().prop_map(FieldKind::Static),
        attribute().prop_map(FieldKind::Attribute),
        proptest::sample::select(Intrinsic::ALL.to_vec()).prop_map(FieldKind::Intrinsic),
    ]
    .prop_map(field);
    leaf.prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            (proptest::sample::select(vec![UnaryOp::Neg, UnaryOp::Not]), inner.clone())
                .prop_map(|(op, operand)| field(FieldKind::Unary(op, Box::new(operand)))),
            (proptest::sample::select(BinaryOp::ALL.to_vec()), inner.clone(), inner)
                .prop_map(|(op, left, right)| field(FieldKind::Binary(op, Box::new(left), Box::new(right)))),
        ]
    })
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    let functions =
        vec![AggregateFunction::Avg, AggregateFunction::Min, AggregateFunction::Max, AggregateFunction::Sum];
    prop_oneof![
        Just(Aggregate { function: AggregateFunction::Count, argument: None, span: Span::default() }),
        (proptest::sample::select(functions), field_expr()).prop_map(|(function, argument)| Aggregate {
            function,
            argument: Some(argument),
            span: Span::default()
        }),
    ]
}

fn scalar_expr() -> impl Strategy<Value = ScalarExpr> {
    let leaf = prop_oneof![
        aggregate().prop_map(ScalarExpr::Aggregate),
        static_value().prop_map(|value| ScalarExpr::Static(value, Span::default())),
    ];
    let arithmetic: Vec<BinaryOp> = BinaryOp::ALL.into_iter().filter(|op| op.is_arithmetic()).collect();
    leaf.prop_recursive(3, 8, 2, move |inner| {
        (proptest::sample::select(arithmetic.clone()), inner.clone(), inner)
            .prop_map(|(op, left, right)| ScalarExpr::Binary { op, left: Box::new(left), right: Box::new(right) })
    })
}

fn scalar_filter() -> impl Strategy<Value = ScalarFilter> {
    let comparisons: Vec<BinaryOp> = BinaryOp::ALL.into_iter().filter(|op| op.is_comparison()).collect();
    (proptest::sample::select(comparisons), scalar_expr(), scalar_expr()).prop_map(|(op, left, right)| ScalarFilter {
        op,
        left,
        right,
    })
}

fn spanset_expr() -> impl Strategy<Value = SpansetExpr> {
    let leaf = proptest::option::of(field_expr())
        .prop_map(|condition| SpansetExpr::Filter { condition, span: Span::default() });
    leaf.prop_recursive(3, 12, 2, |inner| {
        let later_stage = prop_oneof![
            inner.clone().prop_map(Stage::Spanset),
            scalar_filter().prop_map(Stage::ScalarFilter),
            proptest::collection::vec(field_expr(), 1..3).prop_map(Stage::By),
            proptest::collection::vec(field_expr(), 1..3).prop_map(Stage::Select),
            Just(Stage::Coalesce),
        ];
        prop_oneof![
            (proptest::sample::select(SpansetOp::ALL.to_vec()), inner.clone(), inner.clone())
                .prop_map(|(op, left, right)| SpansetExpr::Binary { op, left: Box::new(left), right: Box::new(right) }),
            // A parenthesised pipeline starts with a spanset and has a second stage (one spanset alone
            // in parentheses is that spanset).
            (inner, proptest::collection::vec(later_stage, 1..3)).prop_map(|(first, rest)| {
                let mut stages = vec![Stage::Spanset(first)];
                stages.extend(rest);
                SpansetExpr::Pipeline(Box::new(Pipeline { stages }))
            }),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    let stage = prop_oneof![
        4 => spanset_expr().prop_map(Stage::Spanset),
        1 => scalar_filter().prop_map(Stage::ScalarFilter),
        1 => proptest::collection::vec(field_expr(), 1..3).prop_map(Stage::By),
        1 => proptest::collection::vec(field_expr(), 1..3).prop_map(Stage::Select),
        1 => Just(Stage::Coalesce),
    ];
    let hint = ("[a-z_][a-z0-9_]{0,10}", static_value()).prop_map(|(key, value)| Hint { key, value });
    (proptest::collection::vec(stage, 1..4), proptest::collection::vec(hint, 0..3))
        .prop_map(|(stages, hints)| Query { pipeline: Pipeline { stages }, hints })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_answered_without_panicking(text in any::<String>()) {
        let _ = check(&text);
    }

    #[test]
    fn token_soup_is_answered_without_panicking(text in token_soup()) {
        if let Ok(query) = check(&text) {
            // What is accepted prints to text that means the same.
            prop_assert_eq!(parse(&query.to_string()).unwrap(), query);
        }
    }

    #[test]
    fn a_random_tree_prints_to_text_that_parses_back_to_it(tree in query()) {
        let printed = tree.to_string();
        let reparsed = parse(&printed).map_err(|error| TestCaseError::fail(format!("{printed}: {error}")))?;
        prop_assert_eq!(&reparsed, &tree, "printed as {}", printed);
        let _ = super::validate::validate(&reparsed, &printed);
    }
}
