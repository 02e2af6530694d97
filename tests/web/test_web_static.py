"""The web admin's files as the node serves them (no browser): the page at `/` with a
content security policy, its modules as JavaScript, and the API's own answers unchanged
for paths the pages do not have."""

from __future__ import annotations

import posixpath
import re

from fastapi.testclient import TestClient

from api_helpers import ADMIN, API
from dplb.web import STATIC_DIR


def test_the_page_is_served_at_the_root_with_a_strict_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in r.text
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert r.headers["x-content-type-options"] == "nosniff"


def test_every_module_the_pages_import_is_served_as_javascript(client: TestClient) -> None:
    """Follows the imports from app.js: a module missing from the package (or from the
    wheel's files) would leave the page blank."""
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        r = client.get(f"/{path}")
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/javascript"), path
        for spec in re.findall(r'from "(\.\.?/[^"]+)"', r.text):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), spec)))
    assert {"app.js", "api.js", "dom.js", "forms.js", "pages/services.js"} <= seen
    assert seen == {str(p.relative_to(STATIC_DIR)) for p in STATIC_DIR.rglob("*.js")}, (
        "a module is not imported by any page"
    )


def test_the_stylesheet_and_icon_are_served(client: TestClient) -> None:
    assert client.get("/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/favicon.svg").headers["content-type"].startswith("image/svg+xml")


def test_api_paths_still_answer_as_the_api(client: TestClient) -> None:
    r = client.get(f"{API}/nothing-here", headers=ADMIN)
    assert (r.status_code, r.json()) == (
        404,
        {"errors": [{"path": "(request)", "reason": "the API has no /api/v1/nothing-here"}]},
    )
    assert client.get(f"{API}/health").json() == {"status": "ok", "reasons": []}
    assert client.get("/no-such-page.html").status_code == 404
