"""atlas serve: what it serves, and what it never does."""

import http.client
import os
import shutil

import pytest

from atlas.viewer.server import serve_in_background


@pytest.fixture(scope="module")
def served(tiny_site, tmp_path_factory):
    """A copy of the session's site with two links added: one out of the site, one that
    stays inside."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("do not serve")
    site = tmp_path_factory.mktemp("served") / "site"
    shutil.copytree(tiny_site["site"], site, symlinks=True)
    os.symlink(outside, site / "escape")
    os.symlink(site / "atlas.json", site / "inner-link.json")
    server, url = serve_in_background(site)
    yield server, url
    server.shutdown()


def get(server, path: str) -> tuple[int, dict, bytes]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", path)  # sent as is: no client-side normalization
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_binds_to_loopback(served):
    server, url = served
    assert server.server_address[0] == "127.0.0.1" and url.startswith("http://127.0.0.1:")


def test_serves_the_site_with_types_and_caching(served):
    server, _ = served
    status, headers, body = get(server, "/")
    assert (
        status == 200 and headers["Content-Type"].startswith("text/html") and b"viewer.js" in body
    )
    assert get(server, "/viewer.js")[1]["Content-Type"] == "text/javascript"
    assert get(server, "/tiles/4.dzi")[1]["Content-Type"] == "application/xml"
    assert get(server, "/atlas.json")[1]["Cache-Control"] == "no-cache"
    status, headers, _ = get(server, "/vendor/openseadragon/openseadragon.min.js")
    assert status == 200 and "immutable" in headers["Cache-Control"]
    assert get(server, "/inner-link.json")[0] == 200  # a link that stays inside is fine


def test_every_response_forbids_inline_script_and_other_origins(served):
    server, _ = served
    for path in ("/", "/atlas.json", "/viewer.js", "/nope.html"):
        headers = get(server, path)[1]
        policy = dict(
            part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
        )
        assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'", path
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/../outside/secret.txt",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/tiles/%2E%2E/%2E%2E/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "//etc/passwd",
        "/escape/secret.txt",
        "/tiles/",
        "/cells",
        "/nope.html",
        "/%00atlas.json",
    ],
)
def test_nothing_outside_the_site_and_no_listings(served, path):
    server, _ = served
    status, _, body = get(server, path)
    assert status == 404 and b"do not serve" not in body and b"root:" not in body


@pytest.mark.registry
def test_openseadragon_comes_from_the_registry_for_a_pip_user(tmp_path, monkeypatch):
    """No node_modules anywhere: the package is fetched once from the npm registry into
    the cache, checked against the hash package-lock.json pins, and reused."""
    import json
    from pathlib import Path

    from atlas.viewer import vendor

    lock = json.loads((Path(__file__).resolve().parents[2] / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/openseadragon"]
    assert (pinned["version"], pinned["integrity"]) == (vendor.VERSION, vendor.INTEGRITY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(vendor, "__file__", str(tmp_path / "site-packages" / "atlas" / "x.py"))
    built = vendor.openseadragon(cache=tmp_path / "cache")
    assert (built / "openseadragon.min.js").is_file() and (built / "images").is_dir()
    monkeypatch.setattr(vendor, "REGISTRY", "http://127.0.0.1:9")  # nothing listens there
    assert vendor.openseadragon(cache=tmp_path / "cache") == built  # from the cache
