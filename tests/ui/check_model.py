"""The trace page's model (src/api/ui/tracemodel.js) on the traces real clients and bad data produce,
run in the browser on the module the server serves: tree order, orphans (a parent still on its way),
cycles and repeated span IDs (bad data must still show every span), clock skew, nanosecond times beyond a
double's precision, a 100,000-deep chain (no stack overflow), and the critical path on each."""
import json

import harness
from harness import check

BASE = 1_764_972_000_000_000_000  # ns; beyond 2^53, so exact times need BigInt


def span(span_id, parent, start_ms, end_ms, name=None, **extra):
    out = {"spanId": span_id, "parentSpanId": parent or "", "name": name or span_id,
           "startTimeUnixNano": str(BASE + start_ms * 1_000_000), "endTimeUnixNano": str(BASE + end_ms * 1_000_000)}
    out.update(extra)
    return out


def otlp(*spans, service="svc"):
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                               "scopeSpans": [{"scope": {"name": "s"}, "spans": list(spans)}]}]}


MODEL = """async ([trace]) => {
  const { buildTrace, criticalPath } = await import('/ui/tracemodel.js');
  const model = buildTrace(trace);
  const path = criticalPath(model);
  return {
    order: model.spans.map(s => s.id), depth: model.spans.map(s => s.depth),
    orphans: model.spans.filter(s => s.orphan).map(s => s.id),
    critical: model.spans.filter(s => path.has(s.index)).map(s => s.id).sort(),
    intervals: Object.fromEntries([...path].map(([i, v]) => [model.spans[i].id, v])),
    duration: model.duration, starts: model.spans.map(s => s.start),
    descendants: model.spans.map(s => s.descendants),
  };
}"""


def model(page, trace):
    return page.evaluate(MODEL, [trace])


def run(env):
    with harness.browser_page(env) as page:
        page.goto(env.url("/status"))  # any page of the UI: the module is imported from the server
        # A well-formed trace: tree order, depth, subtree sizes; the path walks back from the root's end.
        m = model(page, otlp(span("r", None, 0, 100), span("b", "r", 20, 90), span("a", "r", 2, 15),
                             span("c", "b", 25, 50), span("d", "b", 40, 85), span("h", "b", 45, 60)))
        check(m["order"] == ["r", "a", "b", "c", "d", "h"], m["order"])
        check(m["depth"] == [0, 1, 1, 2, 2, 2], m["depth"])
        check(m["descendants"] == [5, 0, 3, 0, 0, 0], m["descendants"])
        check(m["critical"] == ["a", "b", "c", "d", "r"], m["critical"])
        ms = 1_000_000
        check(m["intervals"]["r"] == [[0, 2 * ms], [15 * ms, 20 * ms], [90 * ms, 100 * ms]], m["intervals"]["r"])
        check(m["intervals"]["c"] == [[25 * ms, 40 * ms]], f"c only until d took over: {m['intervals']['c']}")

        # Nanosecond precision beyond 2^53: 1 ns apart stays 1 ns apart.
        one = {"spanId": "x", "startTimeUnixNano": str(BASE + 1), "endTimeUnixNano": str(BASE + 2)}
        zero = {"spanId": "y", "startTimeUnixNano": str(BASE), "endTimeUnixNano": str(BASE + 3)}
        m = model(page, otlp(one, zero))
        check(sorted(m["starts"]) == [0, 1] and m["duration"] == 3, m)

        # A parent not (yet) in the trace: its child is a root, marked, and shown.
        m = model(page, otlp(span("r", None, 0, 10), span("lost", "0000000000000bad", 2, 4)))
        check(m["order"] == ["r", "lost"] and m["orphans"] == ["lost"], m)
        check(m["critical"] == ["r"], f"the path is the real root's: {m['critical']}")

        # A cycle and a repeated span ID: every span is still shown once per occurrence.
        m = model(page, otlp(span("p", "q", 0, 10), span("q", "p", 1, 5), span("p", None, 0, 3, name="dup")))
        check(sorted(m["order"]) == ["p", "p", "q"], f"all three spans shown: {m['order']}")

        # Clock skew: a child that ends before its parent starts takes none of the parent's time.
        m = model(page, otlp(span("r", None, 10, 20), span("early", "r", 0, 5), span("late", "r", 12, 25)))
        check(m["critical"] == ["late", "r"], m["critical"])
        check(m["intervals"]["late"] == [[12 * ms, 20 * ms]], f"clipped to the parent: {m['intervals']['late']}")

        # A 100,000-deep chain: built and walked without recursion.
        chain = [span(f"{i:016x}", f"{i - 1:016x}" if i else None, i, 200_000 - i) for i in range(100_000)]
        m = page.evaluate("""async ([trace]) => {
          const { buildTrace, criticalPath } = await import('/ui/tracemodel.js');
          const model = buildTrace(trace);
          return { depth: model.maxDepth, critical: criticalPath(model).size };
        }""", [otlp(*chain)])
        check(m == {"depth": 99_999, "critical": 100_000}, m)

        # Nothing at all.
        m = model(page, {"resourceSpans": []})
        check(m["order"] == [] and m["critical"] == [], m)
    return {"cases": 7}
