"""Every page loads its modules under the server's CSP and shows the shared navigation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PAGES = {
    "/": "Lobby",
    "/call": "Call",
    "/whiteboard": "Whiteboard",
    "/dashboard": "Dashboard",
    "/watch": "Watch",
}


async def test_each_page_has_the_shared_nav_with_itself_marked(start_server, browser):
    _, ts = await start_server(dev=True)
    page = await browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    for path, label in PAGES.items():
        response = await page.goto(str(ts.make_url(path)))
        assert response is not None and response.ok
        assert "script-src 'self'" in response.headers["content-security-policy"]
        await page.wait_for_selector("header nav a", timeout=5000)
        links = await page.eval_on_selector_all(
            "header nav a",
            "links => links.map(a => [a.getAttribute('href'), a.textContent,"
            " a.getAttribute('aria-current')])",
        )
        assert [(href, text) for href, text, _ in links] == list(PAGES.items()), links
        assert [text for _, text, current in links if current == "page"] == [label], links
    assert not problems, problems


async def test_query_fills_the_join_form(start_server, browser):
    _, ts = await start_server(dev=True)
    page = await browser.new_page()
    await page.goto(str(ts.make_url("/whiteboard?room=sketch&name=Ada")))
    await page.wait_for_selector("header nav a")
    assert await page.input_value("#room") == "sketch"
    assert await page.input_value("#name") == "Ada"
