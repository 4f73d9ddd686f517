"""How the console component serves its files: types, caching, security headers, redirect."""

import urllib.error
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, headers=None, method="GET"):
    opener = urllib.request.build_opener(NoRedirect)
    try:
        return opener.open(urllib.request.Request(url, headers=headers or {}, method=method))
    except urllib.error.HTTPError as error:
        return error


def test_ui_without_slash_redirects_to_ui_slash(base_url):
    response = fetch(base_url + "/ui")
    assert response.status == 308
    assert response.headers["Location"] == "/ui/"


def test_the_page_is_html_with_a_strict_content_security_policy(base_url):
    response = fetch(base_url + "/ui/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    for directive in ("script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "default-src 'none'"):
        assert directive in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_javascript_is_served_as_text_javascript(base_url):
    response = fetch(base_url + "/ui/main.js")
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_known_etag_is_answered_304_without_a_body(base_url):
    etag = fetch(base_url + "/ui/style.css").headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    response = fetch(base_url + "/ui/style.css", {"If-None-Match": f'"other", {etag}'})
    assert response.status == 304
    assert response.read() == b""
    assert response.headers["ETag"] == etag


def test_head_answers_the_headers_of_get_without_the_body(base_url):
    get = fetch(base_url + "/ui/api.js")
    head = fetch(base_url + "/ui/api.js", method="HEAD")
    assert head.status == 200
    assert head.read() == b""
    assert head.headers["ETag"] == get.headers["ETag"]


def test_a_write_is_405_naming_the_allowed_methods(base_url):
    response = fetch(base_url + "/ui/", method="POST")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_an_unknown_file_is_404(base_url):
    response = fetch(base_url + "/ui/secret.txt")
    assert response.status == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_root_stays_qinlings_version_document(base_url):
    response = fetch(base_url + "/")
    assert b'"versions"' in response.read()
