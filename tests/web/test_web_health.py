"""The web admin shows what the health checks found, in real headless Chromium over a
real server: a real whose health endpoint (a real loopback listener) goes away shows
down on its service's page with the last check's result and how long ago it changed,
the dashboard shows the service down at a glance, and both come back when it listens
again. The dashboard's ports show their traffic per second; a node that stops answering
is shown as gone, its numbers hidden."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from api_helpers import Node, running_server
from conftest import VIP4
from health_helpers import Listener, checked_node, listener
from web.test_web_admin import real_row, sign_in, steady_traffic

# A rate above zero, as the dashboard writes it (50, 2.5, 1.2k).
MOVING = re.compile(r"^(?:[1-9]|0\.\d*[1-9])")


@pytest.fixture
def health_listener() -> Iterator[Listener]:
    with listener() as server:
        yield server


@pytest.fixture
def node(tmp_path: Path, health_listener: Listener) -> Node:
    return checked_node(tmp_path, health_listener.port, both=True, type="tcp")


def test_a_real_that_fails_its_checks_shows_down_and_back(
    page: Page, url: str, health_listener: Listener
) -> None:
    sign_in(page, url)
    dashboard_pill = page.locator(f'.service-health li[data-service="{VIP4}:80/tcp"] .pill')
    expect(dashboard_pill).to_have_text(f"{VIP4}:80/tcp up")

    page.goto(f"{url}/#/services/{VIP4}/80/tcp")
    row = real_row(page, "10.0.2.11:8080")
    expect(row.locator('[data-field="health"] .pill')).to_have_text("up")
    expect(row.locator(".health-detail")).to_contain_text("pass")

    health_listener.stop()
    expect(row.locator('[data-field="health"] .pill')).to_have_text("down")
    expect(row.locator('[data-field="state"] .pill')).to_have_text("down")
    expect(row.locator(".health-detail")).to_contain_text("refused · for ")

    page.goto(f"{url}/#/")
    expect(dashboard_pill).to_have_text(f"{VIP4}:80/tcp down (2 down)")
    expect(page.locator(".service-health li[data-up=false]")).to_have_count(1)

    health_listener.start()
    expect(dashboard_pill).to_have_text(f"{VIP4}:80/tcp up")


def test_the_dashboard_shows_port_traffic_and_a_node_that_stops_answering_as_gone(
    page: Page, node: Node
) -> None:
    with running_server(node) as url:
        sign_in(page, url)
        port0 = page.locator('tr[data-port="port0"]')
        with steady_traffic(node):
            # SYNs arrive on port0 and leave on port1: packets and bits per second move.
            expect(port0.locator('[data-field="rx_pps"]')).to_have_text(MOVING)
            expect(port0.locator('[data-field="rx_bits"]')).to_have_text(MOVING)
            tx = page.locator('tr[data-port="port1"] [data-field="tx_pps"]')
            expect(tx).to_have_text(MOVING)
            expect(port0.locator('[data-field="errors"]')).to_have_text("0")
        expect(page.locator("#gone")).to_be_hidden()
    # The server is gone: the page says so and shows no number as if it were current.
    expect(page.locator("#gone")).to_be_visible()
    expect(page.locator("#gone")).to_contain_text("The node does not answer since")
    expect(page.locator("#view")).to_be_hidden()
    expect(page.locator("#live")).to_contain_text("no answer")
