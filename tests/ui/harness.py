"""What every browser check shares: the server's addresses, headless Chromium driven by Playwright, the
OpenTelemetry SDK as the sender of the traces the page must show, and screenshots for a reviewer.

A check is a module `check_<name>.py` with `run(env) -> dict`; `run.py <name>` calls it and prints the
dict (figures the Rust test reports) as the last line of its output, as JSON.
"""
import contextlib
import json
import os
import time
import urllib.request

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from playwright.sync_api import sync_playwright

VIEWPORT = {"width": 1280, "height": 800}

# As the machine notes say: headless, and none of Chromium's own background connections (this machine's
# network is closed; they only slow the start and fill the log).
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


class Env:
    """The running server and where screenshots go."""

    def __init__(self, query, otlp_http, screenshots, token=None):
        self.query = query.rstrip("/")
        self.otlp_http = otlp_http.rstrip("/")
        self.screenshots = screenshots
        self.token = token

    def url(self, path):
        return f"{self.query}{path}"


class PageErrors(Exception):
    pass


@contextlib.contextmanager
def browser_page(env):
    """A fresh Chromium page at 1280×800. Any uncaught exception in the page's scripts, and any request the
    page makes to another origin, fails the check when the block ends."""
    errors = []
    outside = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("SPANLAKE_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            page.on("console", lambda message: errors.append(f"console.error: {message.text}")
                    if message.type == "error" and not expected_console_error(message.text) else None)
            page.on("request", lambda request: outside.append(request.url)
                    if not (request.url.startswith(env.query) or request.url.startswith(("data:", "blob:"))) else None)
            yield page
        finally:
            browser.close()
    if errors:
        raise PageErrors("the page reported errors:\n" + "\n".join(errors))
    if outside:
        raise PageErrors("the page loaded from outside its server:\n" + "\n".join(outside))


def expected_console_error(text):
    # Chromium logs every non-2xx fetch as a console error; checks that provoke one assert the page's message.
    return "Failed to load resource" in text


def screenshot(page, env, name):
    os.makedirs(env.screenshots, exist_ok=True)
    path = os.path.join(env.screenshots, f"{name}.png")
    page.screenshot(path=path)
    print(f"screenshot: {path}")
    return path


def tracer_provider(env, service, tenant=None, headers=None, batch=512):
    """A TracerProvider exporting over OTLP/HTTP protobuf with the SDK's batch processor (its default batch
    size), as an instrumented application does."""
    export_headers = dict(headers or {})
    if tenant:
        export_headers["X-Scope-OrgID"] = tenant
    exporter = OTLPSpanExporter(endpoint=f"{env.otlp_http}/v1/traces", headers=export_headers, timeout=30)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=batch, max_queue_size=200_000,
                                                   schedule_delay_millis=200))
    return provider


def http(env, method, path, body=None, headers=None):
    request = urllib.request.Request(env.url(path), data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read()


def flush(env):
    """Cuts the ingester's buffers into blocks on the object store."""
    headers = {"Authorization": f"Bearer {env.token}"} if env.token else {}
    http(env, "POST", "/flush", headers=headers)


def wait_for_trace(env, trace_id, spans, tenant=None, timeout=30):
    """Polls trace by ID until it holds `spans` spans (the SDK's export is asynchronous)."""
    headers = {"Accept": "application/json"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    if env.token:
        headers["Authorization"] = f"Bearer {env.token}"
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        try:
            _, body = http(env, "GET", f"/api/v2/traces/{trace_id}", headers=headers)
            trace = json.loads(body).get("trace", {})
            found = sum(len(ss.get("spans", [])) for rs in trace.get("resourceSpans", [])
                        for ss in rs.get("scopeSpans", []))
            if found >= spans:
                return
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} has {found} of {spans} spans after {timeout} s")


def hex_trace_id(span):
    return format(span.get_span_context().trace_id, "032x")


def hex_span_id(span):
    return format(span.get_span_context().span_id, "016x")


def check(condition, message):
    if not condition:
        raise AssertionError(message)
