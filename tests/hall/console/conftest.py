"""Console fixtures: a hall with console accounts, an HTTP client with a cookie of its own, and
Debian's headless Chromium driven by Playwright (never `playwright install`)."""
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request

import pytest

from haochaping.daemon.hall import db, settings
from haochaping.daemon.hall.console import staff
from haochaping.tools.sim import hall_kit
from haochaping.tools.sim.terminal_sim import SimTerminal
from tests.conftest import wait_until

# number -> (PIN, name, role)
ACCOUNTS = {
    "S0101": ("123456", "张三", "staff"),
    "S0201": ("234567", "王五", "staff"),
    "M01": ("654321", "李四", "manager"),
}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]
_HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(_HERE))), "docs")


@pytest.fixture
def console_settings():
    """[console] keys for hall.toml; a test overrides it with @pytest.mark.parametrize."""
    return {}


@pytest.fixture
def prompt_timeout():
    return 30


def console_hall(folder, windows=("W01", "W02", "W03"), timeout_s=30, api_keys=None,
                 console_keys=None):
    """A hallkit hall with the console ACCOUNTS and extra [api] / [console] keys in hall.toml."""
    cfg = hall_kit.create(folder, windows=windows, timeout_s=timeout_s,
                          extra_superusers=("observer",))
    with open(cfg.path, encoding="utf-8") as f:
        text = f.read()
    for section, keys in (("api", api_keys), ("console", console_keys)):
        if not keys:
            continue
        lines = "".join("%s = %s\n" % (k, json.dumps(v)) for k, v in keys.items())
        head = "\n[%s]\n" % section
        text = text.replace(head, head + lines) if head in text else text + head + lines
    with open(cfg.path, "w", encoding="utf-8") as f:
        f.write(text)
    loaded = settings.load(cfg.path)
    conn = db.connect(loaded.hall.database)
    for number, (pin, name, role) in ACCOUNTS.items():
        staff.add(conn, number, pin, role=role, name=name)
    conn.close()
    return loaded


@pytest.fixture
def hall(tmp_path, console_settings, prompt_timeout):
    return console_hall(str(tmp_path / "hall"), timeout_s=prompt_timeout,
                        console_keys=console_settings)


@pytest.fixture
def base(hall, daemon):
    host, _, port = hall.api.listen.rpartition(":")
    return "http://%s:%s" % (host, port)


@pytest.fixture
def sim(hall, broker):
    """sim(*terminal ids) -> {id: SimTerminal}, connected and known online to the daemon."""
    started = []

    def make(*ids):
        out = {}
        for dev in hall_kit.devices(hall.folder):
            if dev["terminal"] in ids:
                t = SimTerminal(hall.hall.id, dev["terminal"], bytes.fromhex(dev["key"]),
                                "127.0.0.1", hall.mqtt.port, dev["mqtt"]["password"]).start()
                started.append(t)
                out[dev["terminal"]] = t
        for t in out.values():
            wait_until(t.client.is_connected, what="terminal %s connected" % t.core.terminal)
        return out

    yield make
    for t in started:
        t.stop()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        self.json = None
        if (headers.get("Content-Type") or "").startswith("application/json"):
            self.json = json.loads(body)

    @property
    def error(self):
        return (self.json or {}).get("error_code")


class Client:
    """What a browser does, over plain HTTP: one cookie, the CSRF token the page was given."""

    def __init__(self, base):
        self.base = base
        self.cookie = None
        self.csrf = None
        self.set_cookie = None

    def request(self, method, path, body=None, headers=None, csrf=True):
        h = {}
        if self.cookie:
            h["Cookie"] = "hcp_console=" + self.cookie
        data = None
        if method == "POST":
            data = json.dumps(body if body is not None else {}).encode()
            h["Content-Type"] = "application/json"
            if csrf and self.csrf:
                h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        sc = hdrs.get("Set-Cookie")
        if sc:
            self.set_cookie = sc
            self.cookie = re.match(r"hcp_console=([^;]*)", sc).group(1)
        resp = Response(status, hdrs, raw)
        if resp.json and resp.json.get("csrf"):
            self.csrf = resp.json["csrf"]
        m = re.search(rb'<script type="application/json" id="boot">(.*?)</script>', raw)
        if m:
            self.csrf = json.loads(m.group(1))["csrf"]
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def sign_in(self, place, number, pin=None):
        """Open the page at `place` ("/window/W01" or "/hall") and sign in."""
        self.get(place)
        pin = pin if pin is not None else ACCOUNTS[number][0]
        return self.post(place + "/sign-in", {"number": number, "pin": pin})


@pytest.fixture
def client(base):
    """client() -> a new Client (a new browser, as far as the daemon can tell)."""
    return lambda: Client(base)


@pytest.fixture(scope="module")
def _playwright():
    """Playwright's sync API runs an event loop in this thread: started per module and stopped
    after it, or later tests that call asyncio.run() fail."""
    if not os.path.exists(CHROMIUM):
        msg = "%s is missing: apt-get install -y chromium fonts-noto-cjk (.ci/run does)" % CHROMIUM
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import expect, sync_playwright
    # expect()'s own default is 5 s, apart from the pages' 15 s: on a loaded machine a start
    # that took 6 s failed a test that only asks "does the button come on" (a bound on
    # failure, never a speed assertion)
    expect.set_options(timeout=15000)
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(_playwright):
    """browser() -> a new page in a new headless Chromium with a fresh profile (its own cookies),
    sized like a staff PC screen, in Chinese and Beijing time."""
    contexts, dirs = [], []

    def new_page():
        d = tempfile.mkdtemp(prefix="hcp-chromium-")
        dirs.append(d)
        ctx = _playwright.chromium.launch_persistent_context(
            d, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 800}, locale="zh-CN", timezone_id="Asia/Shanghai")
        contexts.append(ctx)
        ctx.set_default_timeout(15000)
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        return page

    yield new_page
    for ctx in contexts:
        ctx.close()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def screenshot(page, name, tmp_path):
    """Save a screenshot; into docs/ (committed, shown in the README) only when
    HCP_SCREENSHOTS=1, so that ordinary test runs leave the work tree clean."""
    folder = DOCS if os.environ.get("HCP_SCREENSHOTS") == "1" else str(tmp_path)
    path = os.path.join(folder, name)
    page.screenshot(path=path, full_page=True)
    return path
