"""The web admin in real headless Chromium, over the API and the harness dataplane on a
real server: signing in, adding a service with two reals through the form and seeing
traffic to its VIP reach them (the service page's connection counts move without a
reload), field errors next to their fields, a viewer without write controls, the live
dashboard, session search and reset, editing and deleting a service, config history
with diff and rollback."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from api_helpers import ADMIN, ADMIN_TOKEN, API, VIEWER_TOKEN, Node
from conftest import CLIENT4, VIP4, client_frame

NEW_VIP = "10.0.100.20"
NEW_REALS = ("10.0.2.12", "10.0.2.13")


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    # The pages refresh every second; ten seconds leaves room on a loaded machine.
    expect.set_options(timeout=10_000)


def sign_in(page: Page, url: str, token: str = ADMIN_TOKEN) -> None:
    page.goto(url)
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Pages")).to_be_visible()


def real_row(page: Page, real_id: str) -> Locator:
    return page.locator(f'table.reals tr[data-real="{real_id}"]')


def syn(node: Node, client_port: int, vip: str, vip_port: int) -> list[tuple[int, Ether]]:
    frame = client_frame(dst=vip) / TCP(sport=client_port, dport=vip_port, flags="S", seq=1000)
    return [(port, Ether(raw)) for port, raw in node.dataplane.process(bytes(frame))]


@contextmanager
def steady_traffic(node: Node, per_tick: int = 5) -> Iterator[None]:
    """SYNs to VIP4:80 from new client ports, `per_tick` every 100 ms, until the block
    ends: counters that keep moving while the test looks at rates."""
    stop = threading.Event()

    def run() -> None:
        port = 20000
        while not stop.wait(0.1):
            for _ in range(per_tick):
                port += 1
                syn(node, port, VIP4, 80)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_sign_in_add_a_service_and_see_its_traffic_reach_the_new_reals(
    page: Page, url: str, node: Node
) -> None:
    sign_in(page, url)
    expect(page.locator("#who")).to_have_text("ops admin")

    page.get_by_role("link", name="Services").click()
    page.get_by_role("link", name="Add service").click()
    page.get_by_label("VIP", exact=True).fill(NEW_VIP)
    page.get_by_label("Port", exact=True).fill("443")
    page.get_by_label("Scheduler").select_option("rr")
    page.get_by_label("Real 1 address").fill(NEW_REALS[0])
    page.get_by_label("Real 1 port").fill("8443")
    page.get_by_role("button", name="Add real").click()
    page.get_by_label("Real 2 address").fill(NEW_REALS[1])
    page.get_by_label("Real 2 port").fill("8443")
    page.get_by_role("button", name="Create service").click()

    sid = f"{NEW_VIP}:443/tcp"
    expect(page.get_by_role("heading", name=sid)).to_be_visible()
    expect(page.get_by_role("status").filter(has_text=f"Created service {sid}")).to_be_visible()
    running = {(str(s.vip), s.port): s for s in node.running().services}
    assert [(str(r.address), r.port) for r in running[(NEW_VIP, 443)].reals] == [
        (NEW_REALS[0], 8443),
        (NEW_REALS[1], 8443),
    ]

    page.get_by_role("link", name="Services", exact=True).first.click()
    listed = page.locator(f'tr[data-service="{sid}"]')
    expect(listed).to_contain_text("2 serving of 2")
    listed.get_by_role("link", name=sid).click()
    for real in NEW_REALS:
        expect(real_row(page, f"{real}:8443").locator('[data-field="connections"]')).to_have_text(
            "0"
        )
    page.evaluate("window.notReloaded = true")

    reached: Counter[str] = Counter()
    for client_port in range(41000, 41010):
        out = syn(node, client_port, NEW_VIP, 443)
        assert len(out) == 1
        port, frame = out[0]
        assert port == 1, "the SYN should leave toward the reals"
        assert frame[TCP].dport == 8443
        reached[frame[IP].dst] += 1
    assert set(reached) == set(NEW_REALS), reached

    for real in NEW_REALS:
        row = real_row(page, f"{real}:8443")
        expect(row.locator('[data-field="connections"]')).to_have_text(str(reached[real]))
        expect(row.locator('[data-field="active"]')).to_have_text(str(reached[real]))
        expect(row.locator('[data-field="state"]')).to_have_text("serving")
    assert page.evaluate("window.notReloaded") is True, "the page was reloaded"


def test_a_field_error_is_shown_next_to_its_field(page: Page, url: str, node: Node) -> None:
    sign_in(page, url)
    page.goto(f"{url}/#/services/new")
    page.get_by_label("VIP", exact=True).fill("10.0.100.21")
    page.get_by_label("Port", exact=True).fill("80")
    page.get_by_label("Real 1 address").fill(NEW_REALS[0])
    real_port = page.get_by_label("Real 1 port")
    real_port.fill("70000")
    page.get_by_role("button", name="Create service").click()

    error = page.locator('[data-error-for="reals[0].port"]')
    expect(error).to_contain_text("less than or equal to 65535")
    # Next to its field: in the same field box, and the input names it.
    expect(real_port.locator("xpath=..").locator(".field-error")).to_have_text(error.inner_text())
    expect(real_port).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_have_count(1)
    assert "10.0.100.21" not in {str(s.vip) for s in node.running().services}

    # An error of the whole config's cross-checks (services[3].reals[0].address) lands
    # next to its field too.
    page.get_by_label("Real 1 address").fill("2001:db8:2::11")
    real_port.fill("8443")
    page.get_by_role("button", name="Create service").click()
    address_error = page.locator('[data-error-for="reals[0].address"]')
    expect(address_error).to_contain_text("IPv6 real behind an IPv4 VIP")
    expect(page.locator('[data-error-for="reals[0].port"]')).to_have_count(0)

    page.get_by_label("Real 1 address").fill(NEW_REALS[0])
    page.get_by_role("button", name="Create service").click()
    expect(page.get_by_role("heading", name="10.0.100.21:80/tcp")).to_be_visible()
    assert "10.0.100.21" in {str(s.vip) for s in node.running().services}


def test_a_viewer_sees_no_write_controls(page: Page, url: str) -> None:
    sign_in(page, url, VIEWER_TOKEN)
    expect(page.locator("#who")).to_have_text("dashboard viewer")

    page.get_by_role("link", name="Services").click()
    expect(page.locator('tr[data-service="10.0.100.10:80/tcp"]')).to_be_visible()
    expect(page.get_by_role("link", name="Add service")).to_have_count(0)

    page.get_by_role("link", name="10.0.100.10:80/tcp").click()
    expect(real_row(page, "10.0.2.11:8080").locator('[data-field="weight"]')).to_have_text("100")
    expect(page.locator("main button")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    expect(page.get_by_role("form", name="Add a real")).to_have_count(0)

    page.goto(f"{url}/#/services/new")
    expect(page.get_by_text("Your token may only read")).to_be_visible()
    expect(page.locator("main form")).to_have_count(0)

    page.get_by_role("link", name="Config").click()
    expect(page.locator('tr[data-version="1"]')).to_be_visible()
    expect(page.get_by_role("button", name="Roll back")).to_have_count(0)


def test_an_admin_sees_the_write_controls_a_viewer_does_not(page: Page, url: str) -> None:
    sign_in(page, url)
    page.goto(f"{url}/#/services/10.0.100.10/80/tcp")
    expect(real_row(page, "10.0.2.11:8080").get_by_role("button", name="Quiesce")).to_be_visible()
    expect(page.get_by_role("link", name="Edit")).to_be_visible()
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    expect(page.get_by_role("form", name="Add a real")).to_be_visible()


def test_a_wrong_token_is_refused(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Token").fill("not-a-token-of-this-node")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("This token is not valid on this node.")
    expect(page.get_by_role("navigation", name="Pages")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_the_token_lasts_the_tab_and_sign_out_forgets_it(page: Page, url: str) -> None:
    sign_in(page, url)
    assert page.evaluate("sessionStorage.getItem('dplb.token')") == ADMIN_TOKEN
    page.reload()
    expect(page.locator("#who")).to_have_text("ops admin")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_dashboard_shows_live_rates_and_load_per_core(page: Page, url: str, node: Node) -> None:
    sign_in(page, url)
    expect(page.get_by_role("heading", name="Node harness")).to_be_visible()
    expect(page.locator(".badge")).to_have_text("config version 1 runs")
    expect(page.locator('[data-stat="packets"]')).to_have_text("0")

    with steady_traffic(node):
        nonzero = r"[1-9][0-9.,]*K?"
        expect(page.locator('[data-stat="packets"]')).to_have_text(re.compile(f"^{nonzero}$"))
        expect(page.locator('[data-stat="connections"]')).to_have_text(re.compile(f"^{nonzero}$"))
        expect(page.locator('[data-core="0"] [data-field="load"]')).to_have_text(
            re.compile(f"^{nonzero} pkt/s$")
        )
        expect(page.locator('[data-stat="sessions"]')).not_to_have_text("0")
    # Once traffic stops, the rates fall back to zero without a reload.
    expect(page.locator('[data-stat="packets"]')).to_have_text("0")


def test_sessions_pages_forward_and_back(page: Page, url: str, node: Node) -> None:
    for cport in range(41000, 41051):  # one more than a page of 50
        syn(node, cport, VIP4, 80)
    sign_in(page, url)
    page.get_by_role("link", name="Sessions").click()
    summary = page.locator("p.summary")
    rows = page.locator("table.sessions tbody tr")
    previous = page.get_by_role("button", name="Previous")
    expect(summary).to_have_text("Sessions 1\u201350, more on the next page")
    expect(rows).to_have_count(50)
    expect(previous).to_be_disabled()
    clients = page.locator("table.sessions tbody tr td:nth-child(2)")
    first_page = set(clients.all_inner_texts())
    assert len(first_page) == 50
    page.get_by_role("button", name="Next").click()
    expect(summary).to_have_text("Sessions 51\u201351")
    expect(rows).to_have_count(1)
    assert "cursor=" in page.url
    (last,) = clients.all_inner_texts()
    assert first_page | {last} == {f"{CLIENT4}:{p}" for p in range(41000, 41051)}
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    previous.click()
    expect(summary).to_have_text("Sessions 1\u201350, more on the next page")
    expect(previous).to_be_disabled()


def test_sessions_search_and_reset(page: Page, url: str, node: Node) -> None:
    syn(node, 40001, VIP4, 80)
    other = client_frame(src="203.0.113.5") / TCP(sport=40002, dport=80, flags="S")
    node.dataplane.process(bytes(other))

    sign_in(page, url)
    page.get_by_role("link", name="Sessions").click()
    expect(page.locator("p.summary")).to_have_text("Sessions 1\u20132")
    page.get_by_label("Client").fill("198.51.100.0/24")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("p.summary")).to_have_text("Sessions 1\u20131")
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("198.51.100.7:40001")
    expect(rows.first).to_contain_text("syn_sent")
    assert "client=198.51.100.0%2F24" in page.url

    rows.first.get_by_role("button", name="Reset").click()
    page.get_by_role("dialog").get_by_role("button", name="Reset session").click()
    expect(page.locator("p.summary")).to_have_text("No sessions match.")
    assert [s["client"] for s in node.engine.sessions()] == [("203.0.113.5", 40002)]

    page.get_by_label("Client").fill("not-an-address")
    page.get_by_role("button", name="Search").click()
    expect(page.locator('[data-error-for="client"]')).to_be_visible()


def test_edit_quiesce_and_delete_a_service(page: Page, url: str, node: Node) -> None:
    sign_in(page, url)
    page.goto(f"{url}/#/services/10.0.100.10/80/tcp")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("VIP", exact=True)).to_have_value(VIP4)
    page.get_by_label("Real 2 weight").fill("50")
    page.get_by_role("button", name="Save service").click()

    expect(real_row(page, "10.0.2.12:8080").locator('[data-field="weight"]')).to_have_text("50")
    assert [r.weight for r in node.running().services[0].reals] == [100, 50]
    # Only the weight changed in the stored config: the form writes what the operator
    # changed, not every default.
    diff = httpx.get(f"{url}{API}/config/diff", params={"from_version": 1}, headers=ADMIN).json()
    assert [c["path"] for c in diff["changes"]] == [
        "services[10.0.100.10:80/tcp].reals[10.0.2.12:8080].weight"
    ]
    changed = [
        line
        for line in diff["text"].splitlines()
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert [line.split() for line in changed] == [["+", "weight:", "50"]], diff["text"]

    row = real_row(page, "10.0.2.11:8080")
    row.get_by_role("button", name="Quiesce").click()
    expect(row.locator('[data-field="state"]')).to_have_text("quiesced")
    expect(row.get_by_role("button", name="Enable")).to_be_visible()
    assert node.running().services[0].reals[0].enabled is False

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete service").click()
    expect(page.get_by_role("heading", name="Services")).to_be_visible()
    expect(page.locator('tr[data-service="10.0.100.10:80/tcp"]')).to_have_count(0)
    expect(page.locator('tr[data-service="10.0.100.10:53/udp"]')).to_be_visible()
    assert (VIP4, 80) not in {(str(s.vip), s.port) for s in node.running().services}


def test_config_history_diff_and_rollback(page: Page, url: str, node: Node) -> None:
    sign_in(page, url)
    page.get_by_role("link", name="Config").click()
    expect(page.locator('tr[data-version="1"]')).to_be_visible()

    # A change made elsewhere shows up without a reload.
    r = httpx.patch(
        f"{url}{API}/services/{VIP4}/80/tcp", json={"scheduler": "maglev"}, headers=ADMIN
    )
    assert r.status_code == 200
    expect(page.locator('tr[data-version="2"]')).to_contain_text("update service")
    expect(page.locator('[data-stat="applied"]')).to_have_text("v2")

    page.locator('tr[data-version="1"]').get_by_role("button", name="Diff to newest").click()
    diff = page.locator(".diff")
    expect(diff.get_by_role("heading")).to_have_text("Version 1 → version 2")
    expect(diff.locator(".changes li")).to_have_text(
        "services[10.0.100.10:80/tcp].scheduler rr → maglev"
    )
    expect(diff.locator("pre.unified .add")).to_contain_text(["scheduler: maglev"])

    page.locator('tr[data-version="1"]').get_by_role("button", name="Roll back").click()
    page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    expect(page.locator('tr[data-version="3"]')).to_contain_text("roll back to version 1")
    expect(page.locator('[data-stat="applied"]')).to_have_text("v3")
    assert node.running().services[0].scheduler == "rr"
    expect(page.locator("table.audit tbody tr").first).to_contain_text(
        "POST /api/v1/config/rollback"
    )
