"""The pages as HTML: every one has the console's layout (base.html), and text that carries markup
(a label, a staff name) reaches the citizen-facing staff PC as text, never as page code."""
import html.parser
import json
import sqlite3

import pytest

from haochaping.daemon.hall.console import staff, web

L = web.load_labels("zh-CN")


class Page(html.parser.HTMLParser):
    """What a browser builds from the page, as far as these tests look: every element in order as
    [tag, attributes, its own text] (a script's text is its content, as the browser reads it)."""

    _VOID = {"meta", "link", "input", "br", "img"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self._open = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append([tag, dict(attrs), ""])
        if tag not in self._VOID:
            self._open.append(self.elements[-1])

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self._open:
            self._open[-1][2] += data

    def find(self, tag, **attrs):
        """Elements with this tag ("*": any) and these attribute values (class_ for class)."""
        return [e for e in self.elements if tag in ("*", e[0])
                and all(e[1].get(k.rstrip("_")) == v for k, v in attrs.items())]

    def text(self, tag, **attrs):
        return self.find(tag, **attrs)[0][2]

    def boot(self):
        return json.loads(self.text("script", type="application/json", id="boot"))


PAGES = [  # path, status, title
    ("/", 200, L["index_title"]),
    ("/window/W01", 200, L["window_title"].format(window="W01")),
    ("/hall", 200, L["hall_title"]),
    ("/window/W99", 404, L["app"]),
]


def test_every_page_has_the_console_layout_title_and_security_headers(client):
    # if this fails, a page shows unstyled, without its title or header, is read out in the wrong
    # language, or loses the headers that keep it from being framed or running foreign scripts
    for path, status, title in PAGES:
        r = client().get(path)
        assert r.status == status, path
        assert r.headers["Content-Type"] == "text/html; charset=utf-8", path
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp and r.headers["X-Frame-Options"] == "DENY", path
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        p = Page(r.body.decode())
        assert r.body.startswith(b"<!doctype html>\n"), path
        assert p.find("html", lang="zh-CN"), path
        assert p.find("meta", charset="utf-8"), path
        assert p.find("meta", name="viewport"), path
        assert p.find("link", rel="stylesheet", href="/static/console.css"), path
        assert p.text("title") == title, path
        assert p.find("header", class_="top") and p.text("h1") == title, path
        assert p.find("main"), path


def test_the_window_and_hall_pages_have_the_sign_in_form_and_their_scripts(client):
    # if this fails, staff or the duty manager get a page they cannot sign in on, or one that
    # never comes alive (no boot data, no script)
    for path, script, heading in (("/window/W01", "/static/window.js", L["sign_in_window"]),
                                  ("/hall", "/static/hall.js", L["sign_in_hall"])):
        p = Page(client().get(path).body.decode())
        assert [e[1].get("src") for e in p.find("script")] == [None, "/static/common.js", script]
        boot = p.boot()
        assert boot["labels"] == L and boot["csrf"] and boot["me"] is None, path
        for id_ in ("me", "me-name", "sign-out", "reconnecting", "sign-in", "sign-in-form",
                    "number", "pin", "sign-in-error", "work"):
            assert len(p.find("*", id=id_)) == 1, (path, id_)
        assert p.text("h2") == heading, path  # the first heading: the sign-in form's


def _with_markup(labels):
    return {k: _with_markup(v) if isinstance(v, dict) else v + '<i id="injected">&amp;</script>'
            for k, v in labels.items()}


@pytest.mark.parametrize("name", ["index.html", "window.html", "hall.html", "error.html"])
def test_a_label_with_markup_shows_as_text_not_as_page_code(name):
    # if this fails, a translated label with a "<" or "&" in it (or autoescaping switched off)
    # breaks the page or puts markup, even a script, into every staff PC's page
    evil = _with_markup(L)
    evil["lang"] = "zh-CN"
    title = evil["app"]
    boot = {"place": "W01", "csrf": "t", "me": None, "labels": evil}
    text = web.load_templates()[name].render(L=evil, title=title, boot=boot, windows=["W01"],
                                             message=evil["errors"]["unknown-window"],
                                             demo=True, terminals=["T001"])  # index: the panel
    p = Page(text)
    assert not p.find("i"), "markup from a label became an element"
    assert p.text("title") == title  # shown as the text it is, entities and all
    if name in ("window.html", "hall.html"):
        assert len(p.find("script")) == 3
        assert p.boot() == boot  # whole, and not HTML-escaped inside the script


def test_a_staff_name_with_script_tags_stays_data_in_the_page(hall, client):
    # if this fails, whoever can set a staff name (hall IT, or a leaked admin account) can put a
    # script on that window's page, or break the page for the staff member it names
    name = '</script><script>alert("x&y")</script><!--'
    conn = sqlite3.connect(hall.hall.database, timeout=30)
    try:
        staff.add(conn, "S0301", "345678", name=name)
    finally:
        conn.close()
    c = client()
    assert c.sign_in("/window/W03", "S0301", "345678").status == 200
    p = Page(c.get("/window/W03").body.decode())
    assert len(p.find("script")) == 3
    assert p.boot()["me"] == {"number": "S0301", "name": name}
