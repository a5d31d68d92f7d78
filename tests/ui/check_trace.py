"""The trace page against a trace the OpenTelemetry SDK sent across four services, with times chosen so
that the critical path is known from the spans alone: its rows, their order, colours, the critical path,
errors, details, collapse, keyboard, search, zoom, the OTLP/JSON download and links."""
import json
import time
import urllib.request

from opentelemetry import trace as otel
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from playwright.sync_api import expect

import harness
from harness import check

MS = 1_000_000

# (key, service, name, parent key, start ms, end ms): 'f' runs wholly beside 'b', and 'h' beside 'd', so
# neither decides when the trace ends; everything else is on the critical path.
LAYOUT = [
    ("root", "frontend", "GET /checkout", None, 0, 100),
    ("a", "auth", "POST /auth", "root", 2, 15),
    ("b", "cart", "GET /cart", "root", 20, 90),
    ("f", "frontend", "cache lookup", "root", 30, 60),
    ("c", "cart", "SELECT cart", "b", 25, 50),
    ("d", "db", "query items", "b", 40, 85),
    ("h", "cart", "audit log", "b", 45, 60),
]


def send(env):
    """Sends the layout as one trace and a second trace that 'd' links to; returns IDs by key."""
    base = time.time_ns() - 60 * 1_000_000_000
    providers = {service: harness.tracer_provider(env, service) for service in {row[1] for row in LAYOUT}}
    tracers = {service: provider.get_tracer("spanlake.ui-tests", "0.1") for service, provider in providers.items()}
    linked = tracers["db"].start_span("nightly job", start_time=base, kind=SpanKind.CONSUMER)
    linked.end(end_time=base + 5 * MS)
    spans = {}
    for key, service, name, parent, start, end in LAYOUT:
        context = otel.set_span_in_context(spans[parent]) if parent else None
        extra = {}
        if key == "d":
            extra["links"] = [Link(linked.get_span_context(), {"link.reason": "scheduled by"})]
        span = tracers[service].start_span(name, context=context, start_time=base + start * MS,
                                           kind=SpanKind.SERVER if parent is None else SpanKind.INTERNAL,
                                           attributes={"layout.key": key}, **extra)
        if key == "d":
            span.set_attribute("db.statement", "SELECT * FROM items")
            span.add_event("retry", {"attempt": 2}, timestamp=base + 60 * MS)
            span.set_status(Status(StatusCode.ERROR, "timeout"))
        spans[key] = span
    for key, *_rest, end in reversed(LAYOUT):
        spans[key].end(end_time=base + end * MS)
    for provider in providers.values():
        provider.shutdown()
    ids = {key: harness.hex_span_id(span) for key, span in spans.items()}
    trace_id = harness.hex_trace_id(spans["root"])
    linked_trace = harness.hex_trace_id(linked)
    harness.wait_for_trace(env, trace_id, len(LAYOUT))
    harness.wait_for_trace(env, linked_trace, 1)
    return trace_id, ids, linked_trace


def tree_order():
    """Depth first, children by start time: the order the waterfall must show."""
    order = []

    def visit(key):
        order.append(key)
        for child in sorted((row for row in LAYOUT if row[3] == key), key=lambda row: row[4]):
            visit(child[0])

    visit("root")
    return order


def critical_keys():
    """The critical path by its definition, computed here independently of the page's code: walking back
    from a span's end, the last-finishing child that started before the cursor holds the path."""
    rows = {row[0]: row for row in LAYOUT}
    on_path = set()

    def walk(key, window_end):
        on_path.add(key)
        _, _, _, _, start, end = rows[key]
        cursor = min(end, window_end)
        for child in sorted((row for row in LAYOUT if row[3] == key), key=lambda row: -row[5]):
            if child[4] < cursor:
                walk(child[0], min(child[5], cursor))
                cursor = child[4]

    walk("root", 100)
    return on_path


def rows(page):
    return page.eval_on_selector_all(".wf-row", """rows => rows.map(r => ({
        id: r.dataset.spanId, critical: r.classList.contains('critical'), error: r.classList.contains('error'),
        match: r.classList.contains('match'), selected: r.classList.contains('selected'),
        color: getComputedStyle(r.querySelector('.swatch')).backgroundColor,
        service: r.querySelector('.service').textContent, name: r.querySelector('.label').textContent,
        top: parseFloat(r.style.top)})).sort((a, b) => a.top - b.top)""")


def run(env):
    trace_id, ids, linked_trace = send(env)
    harness.flush(env)  # read back from the blocks on the object store
    key_of = {span_id: key for key, span_id in ids.items()}
    check(critical_keys() == {"root", "a", "b", "c", "d"}, f"the layout's critical path: {critical_keys()}")
    figures = {}
    with harness.browser_page(env) as page:
        page.goto(env.url(f"/trace/{trace_id}"))
        page.wait_for_selector(".trace-page[data-rendered=true]")
        figures["render_ms"] = float(page.get_attribute(".trace-page", "data-render-ms"))
        shown = rows(page)
        check([key_of.get(row["id"]) for row in shown] == tree_order(),
              f"rows in tree order: {[key_of.get(r['id']) for r in shown]} vs {tree_order()}")
        for row in shown:
            key = key_of[row["id"]]
            layout = next(r for r in LAYOUT if r[0] == key)
            check((row["service"], row["name"]) == (layout[1], layout[2]), f"row {key}: {row}")
        check({key_of[row["id"]] for row in shown if row["critical"]} == critical_keys(),
              f"critical rows: {[key_of[r['id']] for r in shown if r['critical']]}")
        check([key_of[row["id"]] for row in shown if row["error"]] == ["d"], "only the db span is marked as an error")
        colors = {}
        for row in shown:
            colors.setdefault(row["service"], set()).add(row["color"])
        check(all(len(c) == 1 for c in colors.values()), f"one colour per service: {colors}")
        check(len({next(iter(c)) for c in colors.values()}) == len(colors), f"services told apart: {colors}")
        expect(page.locator(".span-count")).to_have_text(f"{len(LAYOUT)} spans")

        # Details of the failed span: attributes by scope, the event with its time, status, the link.
        page.locator(f".wf-row[data-span-id='{ids['d']}'] .label").click()
        detail = page.locator(".span-detail")
        expect(detail.locator("h3")).to_have_text("query items")
        expect(detail).to_contain_text("Error: timeout")
        expect(detail.locator("tr", has_text="db.statement")).to_contain_text("SELECT * FROM items")
        expect(detail.locator("section", has_text="Resource attributes")).to_contain_text("service.name")
        expect(detail.locator("section", has_text="Events")).to_contain_text("retry")
        expect(detail.locator("section", has_text="Events")).to_contain_text("+20.0ms")
        expect(detail.locator("section", has_text="Events").locator("tr", has_text="attempt")).to_contain_text("2")
        expect(detail.locator("section", has_text="Links")).to_contain_text(linked_trace)
        harness.screenshot(page, env, "trace")

        # Collapse the cart subtree: its three children go, a "+3" says where.
        page.locator(f".wf-row[data-span-id='{ids['b']}'] [data-toggle]").click()
        expect(page.locator(".wf-row")).to_have_count(4)
        expect(page.locator(f".wf-row[data-span-id='{ids['b']}'] .badge")).to_have_text("+3")
        page.locator(f".wf-row[data-span-id='{ids['b']}'] [data-toggle]").click()
        expect(page.locator(".wf-row")).to_have_count(len(LAYOUT))

        # Keyboard: Home selects the root, Down walks in tree order, Left on a leaf goes to its parent.
        page.locator(".viewport").focus()
        page.keyboard.press("Home")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        selected = [key_of[row["id"]] for row in rows(page) if row["selected"]]
        check(selected == [tree_order()[2]], f"two rows down from the root: {selected}")
        page.keyboard.press("ArrowRight")  # 'b' has children: to its first child
        page.keyboard.press("ArrowLeft")   # a leaf: back to its parent
        selected = [key_of[row["id"]] for row in rows(page) if row["selected"]]
        check(selected == ["b"], f"right then left returns to the parent: {selected}")

        # Search within the trace.
        page.locator("input.find").fill("audit")
        expect(page.locator(".match-count")).to_have_text("1 matching spans")
        check([key_of[row["id"]] for row in rows(page) if row["match"]] == ["h"], "the audit span matches")
        page.locator("input.find").press("Enter")
        expect(page.locator(".span-detail h3")).to_have_text("audit log")
        page.locator("input.find").fill("SELECT * FROM")  # an attribute value
        expect(page.locator(".match-count")).to_have_text("1 matching spans")

        # Zoom: drag across the middle of the ruler; the first tick no longer reads 0.
        box = page.locator(".ruler .ticks").bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.4, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
        page.mouse.up()
        expect(page.locator(".ruler .tick").first).not_to_have_text("0ns")
        expect(page.get_by_role("button", name="Reset zoom")).to_be_enabled()
        page.get_by_role("button", name="Reset zoom").click()
        expect(page.locator(".ruler .tick").first).to_have_text("0ns")

        # The critical path can be switched off and on.
        page.get_by_role("button", name="Critical path").click()
        check(not any(row["critical"] for row in rows(page)), "critical path hidden")
        page.get_by_role("button", name="Critical path").click()

        # The download is OTLP/JSON that the receiver takes back.
        with page.expect_download() as info:
            page.get_by_role("button", name="Download OTLP JSON").click()
        body = open(info.value.path(), "rb").read()
        downloaded = json.loads(body)
        span_ids = {s["spanId"] for rs in downloaded["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
        check(span_ids == set(ids.values()), "the download holds every span")
        request_status = post_back(env, body)
        check(request_status == 200, f"the download posts back to /v1/traces: {request_status}")

        # A link opens the linked trace.
        page.locator(f".wf-row[data-span-id='{ids['d']}'] .label").click()
        page.locator(".span-detail section", has_text="Links").locator("a").click()
        page.wait_for_url(f"**/trace/{linked_trace}?span=*")
        page.wait_for_selector(".trace-page[data-rendered=true]")
        expect(page.locator(".trace-head h2")).to_contain_text("nightly job")
        expect(page.locator(".span-detail h3")).to_have_text("nightly job")

        # An unknown trace says so.
        page.goto(env.url("/trace/00000000000000000000000000000bad"))
        expect(page.locator(".notice.error")).to_contain_text("No trace with ID")
    return figures


def post_back(env, body):
    otlp_url = f"{env.otlp_http}/v1/traces"
    request = urllib.request.Request(otlp_url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status
