"""The SQL console: the schema beside the editor, results streamed into a paged table, the chart chosen
from the result's types (and switchable), the server's own error messages, CSV download, and the query
kept in the URL.

Sends spans of three services with known counts, start times (six one-minute buckets) and durations;
some are flushed into a block, the rest stay in the ingester, so the answers cover both.
"""
import csv
import io
import json
import secrets
import time
import urllib.error
import urllib.parse

import harness
from harness import check

# Columns the contract (CONTRACTS §5) promises, which the page must list.
SPANS_COLUMNS = ["trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind", "start_time", "end_time",
                 "duration_ns", "status_code", "status_message", "service_name", "attributes", "resource_attributes",
                 "scope_name", "scope_version", "events", "links"]
TRACES_COLUMNS = ["trace_id", "start_time", "end_time", "duration_ns", "root_service_name", "root_span_name",
                  "span_count", "error_count"]
BUCKETS = 6
MINUTE_NS = 60 * 10**9
PAGE_SIZE = 100


def run(env):
    prefix = f"sqlchk{secrets.token_hex(3)}"
    sent = send_spans(env, prefix)
    where = f"WHERE service_name LIKE '{prefix}-%'"
    wait_for_sql_count(env, f"SELECT count(*) FROM spans {where}", len(sent))
    figures = {"spans_sent": len(sent)}

    with harness.browser_page(env) as page:
        open_page(page, env, "/sql")
        figures["schema_columns"] = check_schema(page)
        check_column_insert(page)

        # Count by service: the table equals what was sent, one bar per service.
        by_service = (f"SELECT service_name, count(*) AS spans FROM spans {where} "
                      "GROUP BY service_name ORDER BY service_name")
        run_query(page, by_service)
        expected = sorted(counts(sent, "service").items())
        check(table_rows(page) == [[name, str(n)] for name, n in expected],
              f"count by service: the table shows {table_rows(page)}, expected {expected}")
        check("q=" in page.url and urllib.parse.unquote_plus(page.url.split("q=", 1)[1]) == by_service,
              f"the URL does not hold the query: {page.url}")
        bars = page.locator(".chart-box svg[data-chart=bar] g.category")
        check(bars.count() == len(expected), f"bar chart has {bars.count()} bars, expected {len(expected)}")
        check([bars.nth(i).get_attribute("data-category") for i in range(bars.count())] == [n for n, _ in expected],
              "the bars are not the services")

        # CSV of the same result.
        with page.expect_download() as download_info:
            page.click("button.csv")
        download = download_info.value
        check(download.suggested_filename == "spanlake.csv", f"download named {download.suggested_filename}")
        with open(download.path(), newline="", encoding="utf-8") as file:
            table = list(csv.reader(file))
        check(table == [["service_name", "spans"]] + [[name, str(n)] for name, n in expected],
              f"CSV content {table}")

        # Time buckets: a line with one point per minute, switchable to bars and to the table only.
        per_minute = (f"SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, count(*) AS spans FROM spans {where} "
                      "GROUP BY minute ORDER BY minute")
        run_query(page, per_minute)
        minutes = sorted(counts(sent, "bucket").items())
        check([int(r[1]) for r in table_rows(page)] == [n for _, n in minutes],
              f"per-minute counts {table_rows(page)}, expected {minutes}")
        line = page.locator(".chart-box svg[data-chart=line]")
        check(line.count() == 1, "a time-bucket result does not get a line chart")
        check(line.get_attribute("data-marks") == str(BUCKETS), f"line has {line.get_attribute('data-marks')} points")
        check(line.locator("circle.point").count() == BUCKETS, "line chart points")
        page.click(".view-switch button[data-view=bar]")
        columns = page.locator(".chart-box svg[data-chart=bar] rect.bar")
        check(columns.count() == BUCKETS, f"bar view of the time series has {columns.count()} columns")
        page.click(".view-switch button[data-view=table]")
        harness_expect_hidden(page, ".chart-box")
        page.click(".view-switch button[data-view=line]")
        page.wait_for_selector(".chart-box svg[data-chart=line]")

        # Split by service: one line per service, named in the legend.
        per_service = (f"SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, service_name, count(*) AS spans "
                       f"FROM spans {where} GROUP BY minute, service_name ORDER BY minute, service_name")
        run_query(page, per_service)
        legend = page.locator(".chart-box .legend-item").all_inner_texts()
        check(sorted(legend) == sorted(counts(sent, "service")), f"legend {legend}")
        harness.screenshot(page, env, "sql")

        figures["paging_rows"] = check_paging(page, sent, where)
        check_streaming_and_cancel(page)
        check_errors(page, env)
        check_cut_short(page)
        check_url_opens_query(page, env, sent, where)
    return figures


# --- What is sent --------------------------------------------------------------------------------------

def send_spans(env, prefix):
    """Three services with known counts; each span its own trace, a distinct duration (1 µs steps, so an
    ORDER BY duration_ns has one answer) and a start in one of six minutes half an hour ago (every minute
    gets spans of every service). Half are
    flushed into a block, the rest stay in the ingester."""
    plan = [("checkout", 23), ("frontend", 131), ("payments", 7)]
    base = (time.time_ns() // MINUTE_NS - 30) * MINUTE_NS
    sent = []
    index = 0
    for part in (0, 1):
        for service, total in plan:
            name = f"{prefix}-{service}"
            provider = harness.tracer_provider(env, name, headers=auth_headers(env))
            tracer = provider.get_tracer("check_sql")
            for i in range(total):
                if i % 2 != part:
                    continue
                # Rising for two services, falling for the third: lines a reader can tell apart.
                bucket = min(BUCKETS - 1, int(BUCKETS * (i / total) ** 0.6))
                if service == "payments":
                    bucket = BUCKETS - 1 - bucket
                start = base + bucket * MINUTE_NS + i * 1_000_000
                span_name = f"op-{index:03d}"
                duration = (index + 1) * 1000
                span = tracer.start_span(span_name, start_time=start, attributes={"http.route": f"/r/{i % 4}"})
                span.end(end_time=start + duration)
                sent.append({"service": name, "name": span_name, "duration": duration, "bucket": bucket})
                index += 1
            provider.shutdown()
        if part == 0:
            harness.flush(env)
    return sent


def counts(sent, key):
    out = {}
    for span in sent:
        out[span[key]] = out.get(span[key], 0) + 1
    return out


def auth_headers(env):
    return {"Authorization": f"Bearer {env.token}"} if env.token else {}


def sql_json(env, query):
    headers = {"Content-Type": "application/sql", **auth_headers(env)}
    try:
        _, body = harness.http(env, "POST", "/api/sql?format=json", body=query.encode(), headers=headers)
        return 200, json.loads(body)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_sql_count(env, query, expected, timeout=30):
    deadline = time.monotonic() + timeout
    found = None
    while time.monotonic() < deadline:
        status, answer = sql_json(env, query)
        found = answer["rows"][0][0] if status == 200 else answer
        if found == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"SQL sees {found} of {expected} spans after {timeout} s")


# --- The page ------------------------------------------------------------------------------------------

def open_page(page, env, path):
    page.goto(env.url(path))
    if env.token:
        page.fill("#token", env.token)
        page.dispatch_event("#token", "change")
    page.wait_for_selector(".sql-editor")


def run_query(page, query, state="done"):
    """Types `query`, runs it with Ctrl+Enter and waits for the run to end in `state`."""
    page.fill(".sql-editor", query)
    page.press(".sql-editor", "Control+Enter")
    page.wait_for_function(
        "([query, state]) => { const s = document.querySelector('.sql-status');"
        " return s && s.dataset.state === state && new URLSearchParams(location.search).get('q') === query; }",
        arg=[query, state])


def table_rows(page):
    """The cells of the table's page, without the row numbers."""
    return page.locator(".sql-table tbody tr").evaluate_all(
        "rows => rows.map((r) => [...r.cells].slice(1).map((c) => c.textContent))")


def harness_expect_hidden(page, selector):
    page.wait_for_selector(selector, state="hidden")


def check_schema(page):
    page.wait_for_selector(".schema details[data-table=traces] li[data-column]")
    listed = {}
    for table in ("spans", "traces"):
        listed[table] = page.locator(f".schema details[data-table={table}] li[data-column]").evaluate_all(
            "items => items.map((li) => li.dataset.column)")
    for column in SPANS_COLUMNS:
        check(column in listed["spans"], f"the schema of spans lacks {column}: {listed['spans']}")
    for column in TRACES_COLUMNS:
        check(column in listed["traces"], f"the schema of traces lacks {column}: {listed['traces']}")
    return len(listed["spans"]) + len(listed["traces"])


def check_column_insert(page):
    """Clicking a column name types it at the cursor."""
    page.fill(".sql-editor", "SELECT  FROM spans")
    page.evaluate("() => { const e = document.querySelector('.sql-editor'); e.setSelectionRange(7, 7); }")
    page.click(".schema details[data-table=spans] li[data-column=service_name] button.column")
    value = page.input_value(".sql-editor")
    check(value == "SELECT service_name FROM spans", f"clicking a column gave {value!r}")
    page.press(".sql-editor", "Tab")
    check(page.input_value(".sql-editor") == "SELECT service_name   FROM spans", "Tab does not insert two spaces")


def check_paging(page, sent, where):
    """More than a page: 100 rows a page, the next page the next rows, the count right."""
    query = f"SELECT name, duration_ns FROM spans {where} ORDER BY duration_ns"
    run_query(page, query)
    ordered = sorted(sent, key=lambda s: s["duration"])
    total = len(ordered)
    check(page.get_attribute(".sql-status", "data-rows") == str(total), "row count of the paged result")
    check(page.get_attribute(".pager .range", "data-total") == str(total), "the pager's total")
    first = table_rows(page)
    check(len(first) == PAGE_SIZE, f"page 1 holds {len(first)} rows")
    check(first[0] == [ordered[0]["name"], str(ordered[0]["duration"])], f"first row {first[0]}")
    page.click(".pager button.next")
    page.wait_for_selector(".sql-table table[data-page='2']")
    second = table_rows(page)
    check(len(second) == total - PAGE_SIZE, f"page 2 holds {len(second)} rows, expected {total - PAGE_SIZE}")
    check([r[0] for r in second] == [s["name"] for s in ordered[PAGE_SIZE:]], "page 2 is not the next rows")
    check(page.is_disabled(".pager button.next"), "a next page after the last")
    check(page.inner_text(".pager .range") == f"Rows 101–{total} of {total}", page.inner_text(".pager .range"))
    page.click(".pager button.prev")
    page.wait_for_selector(".sql-table table[data-page='1']")
    return total


def check_streaming_and_cancel(page):
    """On a slow connection (Chromium's network throttling), the first page of a large result shows while
    the rest is still arriving, the count runs, and Cancel stops the reading and keeps what came."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": 150_000, "uploadThroughput": -1})
    try:
        total = 20000
        page.fill(".sql-editor", f"SELECT value, repeat('x', 100) AS pad FROM generate_series(1, {total})")
        page.click("button.run")
        page.wait_for_function(
            "() => document.querySelector('.sql-status')?.dataset.state === 'running'"
            " && document.querySelectorAll('.sql-table tbody tr').length === 100")
        check(table_rows(page)[0][0] == "1", "the first streamed row")
        page.click("button.cancel")
        page.wait_for_selector(".sql-status[data-state=cancelled]")
        kept = int(page.get_attribute(".sql-status", "data-rows"))
        check(100 <= kept < total, f"{kept} rows kept after cancelling")
        check(page.locator(".sql-table tbody tr").count() == 100, "the rows that came are not shown after cancelling")
    finally:
        cdp.send("Network.emulateNetworkConditions",
                 {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        cdp.detach()


def check_errors(page, env):
    """Bad SQL and a refused statement show the server's own message."""
    for query in ("SELEC name FROM spans", "DROP TABLE spans"):
        status, answer = sql_json(env, query)
        check(status == 400, f"the server answered {status} to {query!r}")
        run_query(page, query, state="error")
        shown = page.inner_text(".sql-messages .notice.error")
        check(answer["error"] in shown, f"the page shows {shown!r}, the server said {answer['error']!r}")
        check(page.locator(".sql-table tbody tr").count() == 0, "rows shown for a failed query")


def check_cut_short(page):
    """A query that fails after its first rows were sent (division by zero at row 30,000 of 40,000; wide
    rows, so the first batches are on their way before it): the rows that came stay, and the page says the
    result is incomplete."""
    run_query(page, "SELECT value, repeat('x', 300) AS pad, 1 / (value - 30000) AS x FROM generate_series(1, 40000)",
              state="error")
    rows = int(page.get_attribute(".sql-status", "data-rows"))
    # The engine computes batches in parallel, so rows past the failing one may have come first.
    check(0 < rows < 40000, f"{rows} of 40,000 rows before the failure")
    shown = page.inner_text(".sql-messages .notice.error")
    check("cut short" in shown, f"an incomplete result is not marked: {shown!r}")


def check_url_opens_query(page, env, sent, where):
    """A shared URL `/sql?q=…` opens with the query in the editor and its result."""
    query = (f"SELECT service_name, max(duration_ns) AS longest_ns FROM spans {where} "
             "GROUP BY service_name ORDER BY service_name")
    errors = []
    fresh = page.context.new_page()
    fresh.on("pageerror", lambda error: errors.append(str(error)))
    fresh.goto(env.url("/sql?q=" + urllib.parse.quote(query)))
    if env.token:
        # The token lives in the tab's session storage: a new tab starts without it (the page shows the
        # server's 401), and entering it shows the same URL again.
        fresh.fill("#token", env.token)
        fresh.dispatch_event("#token", "change")
    fresh.wait_for_function("() => document.querySelector('.sql-status')?.dataset.state === 'done'")
    check(fresh.input_value(".sql-editor") == query, "the editor does not hold the URL's query")
    longest = {}
    for span in sent:
        longest[span["service"]] = max(longest.get(span["service"], 0), span["duration"])
    expected = [[name, str(n)] for name, n in sorted(longest.items())]
    check(table_rows(fresh) == expected, f"the URL's query shows {table_rows(fresh)}, expected {expected}")
    recent = fresh.locator(".recent li button").first.get_attribute("title")
    check(recent == query, f"the query is not first in the recent list: {recent!r}")
    fresh.close()
    check(not errors, f"the fresh page reported errors: {errors}")
