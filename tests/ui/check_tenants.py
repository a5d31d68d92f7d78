"""The tenant picker and the token field: with multitenancy and auth on, the page shows a tenant's traces
only with credentials for it, sends X-Scope-OrgID and Authorization on every request, and shows the
server's refusal otherwise. `env.token` is the operator's (admin) token; `token-a` belongs to team-a."""
import time

from playwright.sync_api import expect

import harness
from harness import check

TEAM_A_TOKEN = "token-a"


def send(env, name, headers):
    provider = harness.tracer_provider(env, f"service-of-{name}", headers=headers)
    span = provider.get_tracer("spanlake.ui-tests").start_span(name, start_time=time.time_ns() - 1_000_000_000)
    span.end()
    provider.shutdown()
    return harness.hex_trace_id(span)


def set_identity(page, tenant, token):
    page.locator("#tenant").fill(tenant)
    page.locator("#tenant").dispatch_event("change")
    page.locator("#token").fill(token)
    page.locator("#token").dispatch_event("change")


def run(env):
    # team-a's spans with team-a's own token (the tenant comes from the credential); team-b's with the
    # operator's token naming the tenant.
    trace_a = send(env, "order placed", {"Authorization": f"Bearer {TEAM_A_TOKEN}"})
    trace_b = send(env, "invoice sent", {"Authorization": f"Bearer {env.token}", "X-Scope-OrgID": "team-b"})
    harness.wait_for_trace(env, trace_a, 1, tenant="team-a")
    harness.wait_for_trace(env, trace_b, 1, tenant="team-b")
    sent = []
    with harness.browser_page(env) as page:
        page.on("request", lambda request: sent.append(request) if "/api/" in request.url else None)
        page.goto(env.url(f"/trace/{trace_a}"))
        expect(page.locator(".notice.error")).to_contain_text("requires credentials")

        # team-a's token: its trace shows, team-b's does not exist for it.
        set_identity(page, "", TEAM_A_TOKEN)
        expect(page.locator(".trace-head h2")).to_contain_text("order placed")
        check(sent[-1].headers.get("authorization") == f"Bearer {TEAM_A_TOKEN}", "the token is sent")
        check("x-scope-orgid" not in sent[-1].headers, "no tenant header when none is picked")
        page.goto(env.url(f"/trace/{trace_b}"))
        expect(page.locator(".notice.error")).to_contain_text("No trace with ID")

        # team-a's token asking for team-b: the server's refusal is shown.
        set_identity(page, "team-b", TEAM_A_TOKEN)
        expect(page.locator(".notice.error")).to_contain_text("team-b")

        # The operator picks team-b: its trace shows, and team-a's is not team-b's.
        set_identity(page, "team-b", env.token)
        expect(page.locator(".trace-head h2")).to_contain_text("invoice sent")
        check(sent[-1].headers.get("x-scope-orgid") == "team-b", "the picked tenant is sent")
        check(sent[-1].headers.get("authorization") == f"Bearer {env.token}", "with the operator's token")
        harness.screenshot(page, env, "tenants")
        page.goto(env.url(f"/trace/{trace_a}"))
        expect(page.locator(".notice.error")).to_contain_text("No trace with ID")

        # The choice outlives a reload; the picker offers tenants used before.
        page.reload()
        expect(page.locator("#tenant")).to_have_value("team-b")
        set_identity(page, "team-a", env.token)
        expect(page.locator(".trace-head h2")).to_contain_text("order placed")
        options = page.eval_on_selector_all("#tenants option", "options => options.map(o => o.value)")
        check(options[:2] == ["team-a", "team-b"], f"recent tenants offered: {options}")
    return {"api_requests": len(sent)}
