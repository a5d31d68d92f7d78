"""The search page: TraceQL typed with the autocomplete, the builder writing the TraceQL it runs, the
scatter, the server's error for a bad query, a shared URL reproducing the search, and a trace ID opening its
trace. The traces come from the OpenTelemetry SDK with explicit times; every expectation is computed here
from what was sent."""
import json
import re
import time
import urllib.error
import urllib.parse
import uuid

from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import expect

import harness

MS = 1_000_000

# (age of the trace in seconds, [(parent index or None, service key, name, offset ms, duration ms, error, route)])
# Several services per trace, errors in roots and in children, durations from 2 ms to 900 ms.
PLAN = [
    (240, [(None, "front", "GET /cart", 0, 120, True, "/cart"), (0, "pay", "charge", 10, 80, True, None)]),
    (210, [(None, "front", "GET /cart", 0, 40, False, "/cart"), (0, "stock", "reserve", 5, 10, False, None)]),
    (180, [(None, "pay", "POST /refund", 0, 300, True, "/refund"), (0, "pay", "db.query", 20, 50, False, None)]),
    (150, [(None, "front", "POST /checkout", 0, 450, True, "/checkout"), (0, "pay", "charge", 30, 200, True, None),
           (0, "stock", "reserve", 240, 30, False, None)]),
    (120, [(None, "stock", "GET /stock", 0, 5, False, "/stock")]),
    (90, [(None, "front", "GET /cart", 0, 15, True, "/cart")]),
    (60, [(None, "front", "POST /checkout", 0, 900, False, "/checkout"), (0, "pay", "charge", 50, 600, False, None),
          (1, "stock", "reserve", 700, 100, True, None)]),
    (30, [(None, "pay", "charge", 0, 2, False, "/charge")]),
]


def send(env, services):
    """Sends PLAN; returns the traces as sent: id, start, spans (service, name, duration ns, error)."""
    providers = {key: harness.tracer_provider(env, name) for key, name in services.items()}
    tracers = {key: provider.get_tracer("ui-check-search") for key, provider in providers.items()}
    now = time.time_ns()
    sent = []
    for age, spans in PLAN:
        start = now - age * 1_000_000_000
        made = []
        for parent, service, name, offset, length, error, route in spans:
            context = otel_trace.set_span_in_context(made[parent]) if parent is not None else None
            span = tracers[service].start_span(
                name, context=context, start_time=start + offset * MS,
                kind=SpanKind.SERVER if parent is None else SpanKind.CLIENT,
                attributes={"http.route": route} if route else {"rpc.method": name})
            if error:
                span.set_status(Status(StatusCode.ERROR, "boom"))
            span.end(end_time=start + (offset + length) * MS)
            made.append(span)
        sent.append({
            "id": harness.hex_trace_id(made[0]), "start": start,
            "root_service": services[spans[0][1]], "root_name": spans[0][2],
            "spans": [{"service": services[s[1]], "name": s[2], "duration": s[4] * MS, "error": s[5]} for s in spans],
        })
    for provider in providers.values():
        provider.shutdown()
    for trace in sent:
        harness.wait_for_trace(env, trace["id"], len(trace["spans"]))
    # Search, tags and values then read blocks on the object store, as they mostly do in use.
    harness.flush(env)
    return sent


def newest_first(traces):
    return [t["id"] for t in sorted(traces, key=lambda t: (-t["start"], t["id"]))]


def rows(page):
    return page.locator("table.results tbody tr")


def wait_for_results(page, expected_ids, what):
    """Waits until the table lists exactly `expected_ids` in that order (a search replaces the one before)."""
    try:
        page.wait_for_function(
            """(ids) => {
                const shown = [...document.querySelectorAll('table.results tbody tr')].map((r) => r.dataset.traceId);
                return !document.querySelector('.search-results.loading')
                    && shown.length === ids.length && shown.every((id, i) => id === ids[i]);
            }""", arg=expected_ids, timeout=15_000)
    except Exception as error:  # noqa: BLE001 — say what was shown instead
        shown = [r.get_attribute("data-trace-id") for r in rows(page).all()]
        raise AssertionError(f"{what}: expected traces {expected_ids}, the table shows {shown}") from error


def check_rows(page, traces_by_id, expected_ids, what):
    """Root service and name, span and error counts of every row, as sent."""
    for row in rows(page).all():
        trace = traces_by_id[row.get_attribute("data-trace-id")]
        cells = {name: row.locator(f"td.{name}").inner_text().strip()
                 for name in ("root-service", "root-name", "span-count", "error-count")}
        want = {"root-service": trace["root_service"], "root-name": trace["root_name"],
                "span-count": str(len(trace["spans"])), "error-count": str(sum(s["error"] for s in trace["spans"]))}
        harness.check(cells == want, f"{what}: row {trace['id']} shows {cells}, sent {want}")
    points = page.locator(".scatter-chart circle.point")
    expect(points).to_have_count(len(expected_ids))
    plotted = sorted(p.get_attribute("data-trace-id") for p in points.all())
    harness.check(plotted == sorted(expected_ids), f"{what}: the scatter plots {plotted}, not {sorted(expected_ids)}")


def server_error(env, query):
    """The message the server gives for a query it refuses."""
    try:
        harness.http(env, "GET", "/api/search?" + urllib.parse.urlencode({"q": query}))
    except urllib.error.HTTPError as error:
        harness.check(error.code == 400, f"the server answered {error.code} to {query!r}")
        return json.loads(error.read())["error"]
    raise AssertionError(f"the server accepted the bad query {query!r}")


def check_traceql_module(page):
    """The autocomplete's reading of half-typed TraceQL and the builder's text, in the page's own module."""
    result = page.evaluate("""async () => {
        const t = await import('/ui/traceql.js');
        const at = (text) => t.completionContext(text, text.length);
        return {
            afterBrace: at('{ ').kind,
            scopePrefix: [at('{ resource.serv').kind, at('{ resource.serv').scope, at('{ resource.serv').prefix],
            operator: at('{ span.http.route ').kind,
            value: [at('{ name = "GE').kind, at('{ name = "GE').tag, at('{ name = "GE').prefix],
            afterAnd: at('{ status = error && ').kind,
            narrowing: at('{ name = "a" && status = ').narrowing,
            outside: at('{ name = "a" } ').kind,
            built: t.builderQuery({service: 'a"b', spanName: 'GET /x', status: 'error', minDuration: '100ms',
                filters: [{scope: 'span', name: 'http.route', operator: '=', value: '/a\\\\b'},
                          {scope: '', name: 'my key', operator: '>', value: '5'}]}),
            statusValue: t.suggestions(at('{ status = '), {values: [{type: 'keyword', value: 'error'}]})[0].insert,
        };
    }""")
    want = {
        "afterBrace": "field",
        "scopePrefix": ["attribute", "resource", "serv"],
        "operator": "operator",
        "value": ["value", "name", "GE"],
        "afterAnd": "field",
        "narrowing": '{ name = "a" }',
        "outside": "none",
        "built": '{resource.service.name = "a\\"b" && name = "GET /x" && status = error && duration >= 100ms'
                 ' && span.http.route = "/a\\\\b" && ."my key" > 5}',
        "statusValue": "error",
    }
    harness.check(result == want, f"traceql.js reads TraceQL wrongly:\n got  {result}\n want {want}")


def run(env):
    tag = uuid.uuid4().hex[:8]
    services = {"front": f"shop-front-{tag}", "pay": f"payments-{tag}", "stock": f"stock-{tag}"}
    sent = send(env, services)
    by_id = {t["id"]: t for t in sent}

    with harness.browser_page(env) as page:
        page.goto(env.url("/search"))
        editor = page.locator("textarea.traceql-input")
        suggestions = page.locator("#traceql-suggestions")
        # No search yet: the last hour's traces are shown (others' too, so ours need not be the newest),
        # and the URL stays as it was so Back does not land on a search nobody ran.
        expect(rows(page).first).to_be_visible()
        expect(page.locator(".search-status")).to_contain_text("Recent traces")
        harness.check(page.url == env.url("/search"), f"the default search rewrote the URL: {page.url}")
        check_traceql_module(page)

        # 1. TraceQL typed with the autocomplete: a scope, a name picked by mouse, a value by keyboard.
        editor.click()
        page.keyboard.type("{ resource.")
        expect(suggestions.locator('li[data-value="service.name"]')).to_be_visible()
        suggestions.locator('li[data-value="service.name"]').click()
        expect(editor).to_have_value("{ resource.service.name")
        page.keyboard.type(" =")
        expect(suggestions.locator('li[data-value="=~"]')).to_be_visible()
        page.keyboard.press("Escape")
        expect(suggestions).to_be_hidden()
        page.keyboard.type(" ")
        page.mouse.move(1270, 790)  # off the list, so the screenshot shows the keyboard's choice alone
        for service in services.values():
            expect(suggestions.locator(f'li[data-value="{service}"]')).to_be_visible()
        harness.screenshot(page, env, "search-autocomplete")
        page.keyboard.type(f'"payments-{tag[:4]}')
        expect(suggestions.locator(f'li[data-value="{services["front"]}"]')).to_have_count(0)
        for _ in range(20):
            if suggestions.locator('li[aria-selected="true"]').get_attribute("data-value") == services["pay"]:
                break
            page.keyboard.press("ArrowDown")
        else:
            raise AssertionError("ArrowDown never selected the service in the suggestion list")
        page.keyboard.press("Tab")
        page.keyboard.type(" }")
        query = f'{{ resource.service.name = "{services["pay"]}" }}'
        expect(editor).to_have_value(query)
        page.keyboard.press("Control+Enter")
        with_payments = [t for t in sent if any(s["service"] == services["pay"] for s in t["spans"])]
        expected = newest_first(with_payments)
        wait_for_results(page, expected, "typed TraceQL")
        check_rows(page, by_id, expected, "typed TraceQL")
        harness.check(urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query).get("q") == [query],
                      f"the URL does not hold the query: {page.url}")
        harness.screenshot(page, env, "search")

        # 2. The builder writes the TraceQL it runs.
        page.select_option("select.builder-service", services["front"])
        page.select_option("select.builder-status", "error")
        page.fill("input.builder-min", "100ms")
        built = f'{{resource.service.name = "{services["front"]}" && status = error && duration >= 100ms}}'
        expect(editor).to_have_value(built)
        page.click("button.run-builder")
        matching = [t for t in sent if any(s["service"] == services["front"] and s["error"] and s["duration"] >= 100 * MS
                                           for s in t["spans"])]
        built_expected = newest_first(matching)
        harness.check(len(built_expected) >= 2, "the plan should give the builder more than one trace")
        wait_for_results(page, built_expected, "builder")
        check_rows(page, by_id, built_expected, "builder")

        # The range and the limit rerun the search and go into the URL too.
        page.select_option("select.range", "3h")
        page.wait_for_url(re.compile(r"range=3h"))
        page.select_option("select.limit", "50")
        page.wait_for_url(re.compile(r"range=3h.*limit=50|limit=50.*range=3h"))
        wait_for_results(page, built_expected, "builder over 3 hours")

        # 5. The URL alone reproduces the search, in a page that never typed anything.
        shared = page.url
        fresh = page.context.new_page()
        fresh_errors = []
        fresh.on("pageerror", lambda error: fresh_errors.append(str(error)))
        fresh.on("request", lambda request: fresh_errors.append(f"outside request {request.url}")
                 if not request.url.startswith(env.query) else None)
        fresh.goto(shared)
        expect(fresh.locator("textarea.traceql-input")).to_have_value(built)
        expect(fresh.locator("select.range")).to_have_value("3h")
        expect(fresh.locator("select.limit")).to_have_value("50")
        wait_for_results(fresh, built_expected, "shared URL")
        check_rows(fresh, by_id, built_expected, "shared URL")
        fresh.close()
        harness.check(not fresh_errors, f"the shared URL's page failed: {fresh_errors}")

        # 4. A query the server refuses shows the server's own message.
        bad = "{ resource.service.name = }"
        message = server_error(env, bad)
        editor.fill(bad)
        editor.press("Enter")
        alert = page.locator(".search-message .notice.error")
        expect(alert).to_contain_text(message)
        expect(rows(page)).to_have_count(0)

        # Back returns to the builder's search, from the URL.
        page.go_back()
        expect(page.locator("textarea.traceql-input")).to_have_value(built)
        wait_for_results(page, built_expected, "back")

        # 6. A trace ID opens its trace.
        first = built_expected[0]
        page.locator(f'table.results tr[data-trace-id="{first}"] td.trace-id a').click()
        page.wait_for_url(re.compile(rf"/trace/{first}$"))

    return {"results": len(expected), "builder_results": len(built_expected), "sent_traces": len(sent)}
