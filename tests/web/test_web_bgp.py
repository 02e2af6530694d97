"""The web admin's BGP page in real Chromium, on a node whose BIRD is not installed:
the page says so (the node forwards anyway), an admin drains and undrains with the
buttons, a viewer gets no buttons. BIRD's sessions and routes as the API gives them
with a real BIRD: tests/test_bgp_bird.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from api_helpers import VIEWER_TOKEN, Node

from .test_web_admin import sign_in


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=10_000)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    bgp = {
        "enabled": True,
        "asn": 65001,
        "bird": "/nonexistent/bird",
        "birdc": "/nonexistent/birdc",
        "bird_config": str(tmp_path / "bird.conf"),
        "routes_file": str(tmp_path / "dplb-routes.conf"),
        "poll_interval": 0.5,
        "drain": {"on_stop": False},
    }
    return Node(tmp_path, bgp=bgp)


def test_bgp_page_says_bird_is_missing_and_drains(page: Page, url: str) -> None:
    sign_in(page, url)
    page.get_by_role("link", name="BGP").click()
    expect(page.locator(".badge-slot")).to_have_text("BIRD not installed")
    expect(page.locator(".problems")).to_contain_text("the node keeps forwarding; retrying")
    expect(page.get_by_role("heading", name="Routes to announce")).to_be_visible()
    expect(page.locator("tbody tr").filter(has_text="10.0.100.10/32")).to_contain_text("vip")
    drain_text = page.locator('[data-field="drain"]')
    expect(drain_text).to_have_text("Not drained.")
    page.get_by_role("button", name="Drain", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Drain", exact=True).click()
    expect(drain_text).to_contain_text("no established sessions left")
    expect(page.get_by_role("button", name="Drain", exact=True)).to_be_disabled()
    page.get_by_role("button", name="Undrain").click()
    expect(drain_text).to_have_text("Not drained.")


def test_a_viewer_sees_the_bgp_page_without_buttons(page: Page, url: str) -> None:
    sign_in(page, url, VIEWER_TOKEN)
    page.goto(f"{url}/#/bgp")
    expect(page.locator('[data-field="drain"]')).to_have_text("Not drained.")
    expect(page.locator("main button")).to_have_count(0)
