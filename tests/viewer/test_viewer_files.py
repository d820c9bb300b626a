"""The viewer's files: served by the API, same origin only, under a content security policy."""

from __future__ import annotations

import re

import httpx

from app.viewer import CONTENT_SECURITY_POLICY, STATIC
from support.servers import RunningAPI


async def test_the_page_and_its_assets_come_from_this_origin(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'self'" in CONTENT_SECURITY_POLICY
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert (await client.get("/?session=demo")).text == page.text
        referenced = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
        assets = [path for path in referenced if path.startswith("/viewer/")]
        assert len(assets) == 3
        assert set(referenced) - set(assets) == {"/"}
        kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        for path in assets:
            response = await client.get(path)
            assert response.status_code == 200, path
            suffix = path[path.rindex(".") :]
            assert response.headers["content-type"].startswith(kinds[suffix]), path
        modules = re.findall(r'from "([^"]+)"', (await client.get("/viewer/app.js")).text)
        for module in modules:
            assert module.startswith("./"), module
            assert (await client.get(f"/viewer/{module[2:]}")).status_code == 200
        missing = await client.get("/viewer/nope.js")
        assert missing.status_code == 404


def test_no_file_names_another_origin_or_runs_inline_code() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://", text.replace("http://www.w3.org/2000/svg", "")), path
        assert "eval(" not in text, path
        assert "innerHTML" not in text, path
        if path.suffix == ".html":
            assert "<script>" not in text
            assert " style=" not in text
            assert "<style" not in text
            assert re.search(r"\son[a-z]+=", text) is None  # no inline event handlers
