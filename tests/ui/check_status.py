"""The status page: the version the server reports, figures equal to what `/metrics` says (read here by
Python), blocks appearing after a flush by the page's own refresh, the ingest rate measured while spans
arrive, and no more polling once the page is left.
"""
import json
import re
import secrets
import threading
import time
import urllib.error

import harness
from harness import check

# The page reads /metrics this often (status.js POLL_MS); waits below are a few of these.
POLL_SECONDS = 3


def run(env):
    service = f"statuschk-{secrets.token_hex(3)}"
    sent = 40
    send(env, service, sent)
    wait_for_sql(env, f"SELECT count(*) FROM spans WHERE service_name = '{service}'", sent)
    _, body = harness.http(env, "GET", "/api/status/buildinfo")
    build = json.loads(body)
    figures = {"spans_sent": sent}

    with harness.browser_page(env) as page:
        page.goto(env.url("/status"))
        if env.token:
            page.fill("#token", env.token)
            page.dispatch_event("#token", "change")
        wait_for_polls(page, 1)

        version = page.locator(".status-head h2")
        check(version.get_attribute("data-version") == build["version"],
              f"version {version.get_attribute('data-version')!r}, buildinfo says {build['version']!r}")
        check(build["version"] in version.inner_text(), "the version is not shown")
        check(build["revision"] in page.inner_text(".status-head"), "the revision is not shown")

        figures.update(check_figures_match_metrics(page, env))

        # A flush makes blocks; the page's own refresh (no click) shows them.
        harness.flush(env)
        blocks = wait_for_page_figure(page, env, "blocks", lambda metrics: metric_sum(metrics, "spanlake_catalog_blocks"))
        check(blocks > 0, "no blocks stored after a flush")
        figures["blocks"] = blocks

        figures["ingest_rate"] = check_ingest_rate(page, env, service)
        page.wait_for_selector(".rate-chart svg[data-chart=line]")
        harness.screenshot(page, env, "status")

        check_polling_stops(page)
        if env.token:
            check_refusal_shown(page, env)
    return figures


# --- Sending and reading what the server says ------------------------------------------------------------

def send(env, service, count, start=None):
    provider = harness.tracer_provider(env, service, headers=auth_headers(env))
    tracer = provider.get_tracer("check_status")
    start = start or time.time_ns() - 60 * 10**9
    for i in range(count):
        span = tracer.start_span(f"work-{i % 4}", start_time=start + i * 1_000_000)
        span.end(end_time=start + i * 1_000_000 + 250_000)
    provider.shutdown()


def auth_headers(env):
    return {"Authorization": f"Bearer {env.token}"} if env.token else {}


def wait_for_sql(env, query, expected, timeout=30):
    deadline = time.monotonic() + timeout
    found = None
    while time.monotonic() < deadline:
        found = sql_count(env, query)
        if found == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"SQL counts {found}, expected {expected}")


def sql_count(env, query):
    headers = {"Content-Type": "application/sql", **auth_headers(env)}
    _, body = harness.http(env, "POST", "/api/sql?format=json", body=query.encode(), headers=headers)
    return json.loads(body)["rows"][0][0]


def scrape(env):
    """/metrics as {(name, sorted label pairs): value}, parsed here independently of the page."""
    _, body = harness.http(env, "GET", "/metrics", headers=auth_headers(env))
    samples = {}
    pattern = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        match = pattern.match(line)
        if not match:
            continue
        labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or "")))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def metric_sum(samples, name):
    return sum(value for (metric, _), value in samples.items() if metric == name)


# --- The page ------------------------------------------------------------------------------------------

def polls(page):
    return int(page.get_attribute(".status-page", "data-polls") or 0)


def wait_for_polls(page, at_least, timeout=20_000):
    page.wait_for_function(
        "(n) => Number(document.querySelector('.status-page')?.dataset.polls || 0) >= n", arg=at_least, timeout=timeout)


def figure_value(page, key):
    text = page.get_attribute(f".figure[data-figure={key}]", "data-value")
    return float(text) if text else None


def figure_text(page, key):
    return page.inner_text(f".figure[data-figure={key}] .value")


COMPARED = {
    "spans-accepted": "spanlake_spans_accepted_total",
    "wal-bytes": "spanlake_wal_bytes",
    "buffer-bytes": "spanlake_ingester_buffer_bytes",
}


def check_figures_match_metrics(page, env):
    """Spans accepted, WAL and buffer bytes equal /metrics. The server may change between two reads (a
    background flush), so the comparison is made when Python reads the same figures before and after
    the page's refresh."""
    for _ in range(10):
        before = {key: metric_sum(scrape(env), name) for key, name in COMPARED.items()}
        seen = polls(page)
        page.click("button.refresh")
        wait_for_polls(page, seen + 1)
        after = {key: metric_sum(scrape(env), name) for key, name in COMPARED.items()}
        if before == after:
            break
    else:
        raise AssertionError("the server's figures kept changing; nothing to compare")
    for key, value in after.items():
        check(figure_value(page, key) == value, f"{key}: the page shows {figure_value(page, key)}, /metrics {value}")
    accepted = int(after["spans-accepted"])
    check(figure_text(page, "spans-accepted") == f"{accepted:,}",
          f"spans accepted shown as {figure_text(page, 'spans-accepted')!r}, /metrics says {accepted}")
    for key in ("wal-bytes", "buffer-bytes"):
        detail = page.inner_text(f".figure[data-figure={key}] .detail")
        check(f"{int(after[key]):,} bytes" in detail, f"{key} detail {detail!r} lacks {int(after[key]):,} bytes")
    # Spans stored: the tenant's own count, as SQL gives it.
    stored = sql_count(env, "SELECT count(*) FROM spans")
    check(figure_value(page, "spans-stored") == stored,
          f"spans stored shows {figure_value(page, 'spans-stored')}, SQL counts {stored}")
    return {"spans_accepted": accepted, "wal_bytes": int(after["wal-bytes"]), "buffer_bytes": int(after["buffer-bytes"])}


def wait_for_page_figure(page, env, key, expected_of, timeout=30):
    """Waits (the page refreshing itself) until figure `key` equals what /metrics says."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        expected = expected_of(scrape(env))
        seen = polls(page)
        if figure_value(page, key) == expected and expected:
            return expected
        wait_for_polls(page, seen + 1, timeout=POLL_SECONDS * 4 * 1000)
    raise AssertionError(f"{key}: the page shows {figure_value(page, key)}, /metrics {expected_of(scrape(env))}")


def check_ingest_rate(page, env, service):
    """While spans arrive, the rate is a positive number of spans per second."""
    stop = threading.Event()

    def keep_sending():
        while not stop.is_set():
            send(env, service, 20)
            stop.wait(0.3)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        page.wait_for_function(
            "() => Number(document.querySelector('.figure[data-figure=ingest-rate]')?.dataset.value || 0) > 0",
            timeout=POLL_SECONDS * 6 * 1000)
    finally:
        stop.set()
        sender.join()
    text = figure_text(page, "ingest-rate")
    check(re.fullmatch(r"[\d,]+(\.\d)? spans/s", text), f"ingest rate shown as {text!r}")
    return figure_value(page, "ingest-rate")


def check_polling_stops(page):
    """Leaving the page stops its timer: no /metrics request for two poll periods after."""
    requests = []
    page.on("request", lambda request: requests.append(request.url) if request.url.endswith("/metrics") else None)
    page.click("header nav a[data-page=sql]")
    page.wait_for_selector(".sql-editor")
    requests.clear()
    page.wait_for_timeout(POLL_SECONDS * 2 * 1000 + 500)  # an observation window, not a synchronisation
    check(not requests, f"the status page kept polling after it was left: {requests}")


def check_refusal_shown(page, env):
    """With auth on, credentials that are not an admin's get the server's refusal of /metrics on the page,
    and the version still shows."""
    wrong = "not-a-valid-token"
    try:
        harness.http(env, "GET", "/metrics", headers={"Authorization": f"Bearer {wrong}"})
        raise AssertionError("/metrics answered a wrong token")
    except urllib.error.HTTPError as error:
        message = json.loads(error.read())["error"]
        status = error.code
    page.goto(env.url("/status"))
    page.fill("#token", wrong)
    page.dispatch_event("#token", "change")
    notice = page.locator(".status-page .notice", has_text=message)
    notice.wait_for()
    check(f"HTTP {status}" in notice.inner_text(), f"the refusal's status is not shown: {notice.inner_text()!r}")
    page.wait_for_selector(".status-head h2[data-version]")
    page.fill("#token", env.token)
    page.dispatch_event("#token", "change")
