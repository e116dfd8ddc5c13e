"""The QR channel (评价二维码, RULES.md 第五条, 第六条) end to end with real parts: mosquitto, the
hall daemon as a process with its [mobile] listener, simulated terminals over MQTT, phones as
plain HTTP clients (forms and redirects, no script), the desk card from `hcp window qr`."""
import contextlib
import http.client
import os
import re
import secrets
import threading
import urllib.parse

import pytest
from click.testing import CliRunner

from haochaping.daemon.hall import api_client, phone_ratings, qrcodes, settings
from haochaping.tools.cli import _register, cli
from haochaping.tools.sim import hall_kit, processes
from tests.conftest import wait_until

_register()
PER_ADDRESS = 40
NAME, PHONE = "王小明", "13912345678"


def add_mobile(cfg, grace_s=None, per_address=PER_ADDRESS):
    """[mobile] on a free port with an identity key; optionally a prompt grace period."""
    port = processes.free_port()
    key = os.path.join(cfg.folder, "identity.key")
    with open(key, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    os.chmod(key, 0o600)
    with open(cfg.path, encoding="utf-8") as f:
        text = f.read()
    if grace_s is not None:
        text = re.sub(r"(\n\[sessions\]\n)", r"\1grace_s = %d\n" % grace_s, text)
    text += ('\n[mobile]\nlisten = "127.0.0.1:%d"\nidentity_key_file = "identity.key"\n'
             "per_address_per_minute = %d\nper_token_per_minute = 20\n" % (port, per_address))
    with open(cfg.path, "w", encoding="utf-8") as f:
        f.write(text)
    return settings.load(cfg.path)


@pytest.fixture
def grace():
    return None


@pytest.fixture
def timeout():
    return 30


@pytest.fixture
def hall(tmp_path, grace, timeout):
    cfg = hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02"), timeout_s=timeout,
                          extra_superusers=("observer",))
    return add_mobile(cfg, grace)


@contextlib.contextmanager
def phone_hall(hall, terminals):
    """The hall with its phone page ([mobile]) and a daemon process of its own, its terminals,
    the window API and a phone: (cfg, api, terminals, phone); the daemon is killed after."""
    cfg = add_mobile(hall)
    d = processes.DaemonProcess(cfg).start()
    try:
        yield cfg, api_client.WindowApi(cfg), terminals(), Phone(cfg)
    finally:
        d.kill()


class Phone:
    """A citizen's phone: GET and POST forms on the mobile listener, redirects by hand."""

    def __init__(self, hall):
        host, _, port = hall.mobile.listen.rpartition(":")
        self.host, self.port = host, int(port)

    def request(self, method, path, form=None, body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=15)
        h = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
        if body is not None:
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, form=None, body=None):
        return self.request("POST", path, form=form, body=body)


def follow(path, location):
    return urllib.parse.urljoin(path, location)


def card_path(hall, window="W01"):
    """The desk card's path, as `hcp window qr` prints its URL (and writes its PNG)."""
    out = os.path.join(hall.folder, "card-%s.png" % window)
    r = CliRunner().invoke(cli, ["window", "qr", "--config", hall.path, "--window", window,
                                 "--out", out])
    assert r.exit_code == 0, r.output
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    url = re.search(r"window %s: (\S+)" % window, r.output).group(1)
    return urllib.parse.urlsplit(url).path


def open_prompt(api, terminals, window="W01", ticket="A001"):
    api.start(window, ticket)
    api.finish(window)
    term = terminals[{"W01": "T001", "W02": "T002"}[window]]
    term.session_seen = term.wait_session(token_not=getattr(term, "last_token", None))
    assert term.session_seen is not None
    term.last_token = term.session_seen["token"]
    return term


def press_racing(term, level):
    """A key press that left the terminal before the daemon's clear of its prompt arrived:
    it carries the prompt's token, whatever the terminal has heard since."""
    with term.lock:
        session = term.session_seen
        term.core.session = session
    return term.press(level)


def phone_token_path(phone, hall, window="W01"):
    """Scan the desk card: the path of the open prompt's rating page."""
    card = card_path(hall, window)
    status, headers, _ = phone.get(card)
    assert status == 303, "the desk card did not lead to the open prompt"
    return follow(card, headers["location"])


def ratings(hall_db):
    return hall_db("SELECT terminal, level, outcome, transaction_id, channel FROM ratings"
                   " ORDER BY id")


def test_a_phone_rating_counts_and_a_key_press_after_it_is_a_duplicate(hall, api, terminals,
                                                                       hall_db):
    # if this fails, one 办件 is rated twice (phone and key) or the phone's rating is lost
    terms = terminals()
    phone = Phone(hall)
    term = open_prompt(api, terms)
    page = phone_token_path(phone, hall)
    status, _, body = phone.get(page)
    assert status == 200 and "非常满意" in body and "<script" not in body
    # fast on a weak connection: a few KB, nothing else to download (no CDN, font or image)
    assert len(body.encode()) < 4096, len(body.encode())
    assert not re.search(r"""(src|href)=|@import|url\(""", body)
    status, headers, _ = phone.post(page, {"level": "2"})
    assert status == 303
    seq = press_racing(term, 5)
    wait_until(lambda: len(ratings(hall_db)) == 2, what="the key press stored")
    (tx,) = hall_db("SELECT id, rating_id FROM transactions WHERE window='W01'")
    qr, key = ratings(hall_db)
    assert qr == ("QR", 2, "counted", tx[0], "QR")
    assert key == ("T001", 5, "duplicate", tx[0], "PJQ")
    assert hall_db("SELECT channel FROM ratings WHERE id=?", tx[1]) == [("QR",)]
    assert seq >= 0
    state = api.state("W01")
    assert state["state"] == "rated" and state["level"] == 2 and state["channel"] == "QR"


def test_a_screen_beside_the_window_gets_the_prompts_qr_from_the_window_api(hall, api,
                                                                           terminals, hall_db):
    # if this fails, a queue system's window screen (a terminal with a screen) has no 评价二维码
    # to show, or shows one that rates another 办件 or still works after the rating
    terms = terminals()
    phone = Phone(hall)
    assert api.state("W01")["qr_url"] is None  # idle: nothing to rate
    api.start("W01", "A001")
    assert api.state("W01")["qr_url"] is None  # serving, not yet 请评价
    finished = api.finish("W01")
    assert terms["T001"].wait_session() is not None
    url = finished["qr_url"]
    assert url and api.state("W01")["qr_url"] == url
    path = urllib.parse.urlsplit(url).path
    status, headers, _ = phone.post(path, {"level": "1"})
    assert status == 303
    (tx,) = hall_db("SELECT id FROM transactions WHERE window='W01'")
    assert ratings(hall_db) == [("QR", 1, "counted", tx[0], "QR")]
    state = api.state("W01")
    assert state["state"] == "rated" and state["qr_url"] is None
    assert phone.post(path, {"level": "5"})[0] == 409  # the code is spent
    assert len(ratings(hall_db)) == 1


def test_a_key_press_first_makes_the_phone_rating_a_duplicate_and_the_page_says_so(
        hall, api, terminals, hall_db):
    # if this fails, a citizen who pressed the key and then scanned gets two ratings counted
    terms = terminals()
    phone = Phone(hall)
    term = open_prompt(api, terms)
    page = phone_token_path(phone, hall)
    term.press(1)
    wait_until(lambda: len(ratings(hall_db)) == 1, what="the key press stored")
    status, _, body = phone.post(page, {"level": "5"})
    assert status == 200 and "评价器上评价过了" in body
    assert [r[:3] for r in ratings(hall_db)] == [("T001", 1, "counted"), ("QR", 5, "duplicate")]
    # the same phone again: nothing more stored
    status, _, body = phone.post(page, {"level": "5"})
    assert status == 409 and "已经" in body
    assert len(ratings(hall_db)) == 2


def test_a_phone_and_a_key_racing_for_one_prompt_count_exactly_once(hall, api, terminals,
                                                                    hall_db):
    # if this fails, a race between the two channels counts a 办件 twice (or not at all)
    terms = terminals()
    phone = Phone(hall)
    for i in range(5):
        term = open_prompt(api, terms, ticket="R%02d" % i)
        page = phone_token_path(phone, hall)
        go = threading.Barrier(2)
        got = []

        def tap(page=page, go=go, got=got):
            go.wait()
            got.append(phone.post(page, {"level": "1"})[0])

        t = threading.Thread(target=tap)
        t.start()
        go.wait()
        press_racing(term, 4)
        t.join()
        assert got[0] in (200, 303)  # counted (303 on to /more) or the duplicate's page
        wait_until(lambda i=i: len(ratings(hall_db)) == 2 * (i + 1), what="both stored")
    rows = ratings(hall_db)
    for tx in {r[3] for r in rows}:
        outcomes = sorted(r[2] for r in rows if r[3] == tx)
        assert outcomes == ["counted", "duplicate"], outcomes
    assert hall_db("SELECT COUNT(*) FROM transactions WHERE rating_id IS NULL") == [(0,)]


def test_the_desk_card_says_kindly_when_nothing_is_open_or_it_is_already_rated(
        hall, api, terminals, hall_db):
    # if this fails, a citizen scanning the desk card rates someone else's 办件 or sees an error
    terms = terminals()
    phone = Phone(hall)
    card = card_path(hall)
    status, _, body = phone.get(card)
    assert status == 200 and "没有待评价" in body
    api.start("W01", "A001")
    status, _, body = phone.get(card)  # serving, not yet 请评价
    assert status == 200 and "没有待评价" in body
    open_prompt(api, terms, ticket="A002")
    page = phone_token_path(phone, hall)
    assert phone.post(page, {"level": "3"})[0] == 303
    status, _, body = phone.get(card)
    assert status == 200 and "没有待评价" in body
    status, _, body = phone.get(page)
    assert "已经" in body
    status, _, body = phone.post(page, {"level": "1"})  # the same code used again
    assert status == 409 and "已经" in body
    assert len(ratings(hall_db)) == 1


@pytest.mark.parametrize("grace", [0])
def test_forged_and_expired_tokens_get_a_clear_page_and_store_nothing(hall, api, terminals,
                                                                      hall_db):
    # if this fails, a made-up or stale link rates a 办件
    terms = terminals()
    phone = Phone(hall)
    open_prompt(api, terms)
    page = phone_token_path(phone, hall)
    token = page.rsplit("/", 1)[1]
    body_s, mac = token.split(".")
    forged = [
        "/r/" + body_s + "." + ("A" if mac[0] != "A" else "B") + mac[1:],   # altered MAC
        "/r/" + qrcodes.make_token(os.urandom(32), "H01", 1, 2 ** 31),      # another key
        "/r/" + body_s,                                                     # cut
        "/r/%E4%BD%A0%00", "/r/" + "A" * 300,
    ]
    for path in forged:
        status, _, body = phone.post(path, {"level": "1"})
        assert status == 404 and "二维码无效" in body, path
    card = card_path(hall)
    status, _, body = phone.get(card[:-2] + "xx")
    assert status == 404 and "二维码无效" in body
    api.start("W01", "A002")  # the next ticket closes the prompt: the token is stale
    status, _, body = phone.post(page, {"level": "1"})
    assert status == 410 and "已结束" in body
    assert ratings(hall_db) == []


@pytest.mark.parametrize("grace,timeout", [(0, 5)])
def test_a_token_whose_prompt_timed_out_gets_a_clear_page_and_stores_nothing(
        hall, api, terminals, hall_db):
    # if this fails, a phone left on the rating page rates a 办件 after its prompt is over
    terms = terminals()
    phone = Phone(hall)
    open_prompt(api, terms)
    page = phone_token_path(phone, hall)
    assert phone.get(page)[0] == 200
    wait_until(lambda: hall_db("SELECT prompt_closed_at FROM transactions")[0][0] is not None,
               timeout=10, what="the prompt timed out")
    status, _, body = phone.post(page, {"level": "1"})
    assert status == 410 and "已结束" in body
    status, _, body = phone.get(page)
    assert status == 410 and "已结束" in body
    assert hall_db("SELECT COUNT(*) FROM ratings WHERE terminal='QR'") == [(0,)]


def test_submissions_for_one_token_are_limited_whatever_the_address_allows(
        hall, api, terminals, hall_db):
    # if this fails, a script holding one code can hammer the daemon's writer with it
    terms = terminals()
    phone = Phone(hall)
    open_prompt(api, terms)
    page = phone_token_path(phone, hall)
    statuses = [phone.post(page, {"level": "6"})[0] for _ in range(20)]
    assert statuses == [400] * 20
    status, _, body = phone.post(page, {"level": "1"})
    assert status == 429 and "频繁" in body
    assert ratings(hall_db) == []
    # another window's code from the same address is still taken
    open_prompt(api, terms, "W02", "B001")
    assert phone.post(phone_token_path(phone, hall, "W02"), {"level": "1"})[0] == 303
    assert [r[:3] for r in ratings(hall_db)] == [("QR", 1, "counted")]


def test_hcp_window_qr_writes_a_card_and_a_printable_sheet_that_phones_can_open(hall, daemon):
    # if this fails, hall IT cannot print the windows' desk cards, or a printed card leads
    # nowhere
    phone = Phone(hall)

    def qr(*args):
        return CliRunner().invoke(cli, ["window", "qr", "--config", hall.path, *args])

    card = os.path.join(hall.folder, "W02.svg")
    r = qr("--window", "W02", "--out", card)
    assert r.exit_code == 0, r.output
    url = re.search(r"window W02: (\S+)", r.output).group(1)
    with open(card, encoding="utf-8") as f:
        svg = f.read()
    assert svg.startswith("<?xml") and "<svg" in svg
    for text in ("窗口 W02", qrcodes.INSTRUCTIONS[0], qrcodes.INSTRUCTIONS[1], url):
        assert text in svg, text
    sheet = os.path.join(hall.folder, "cards.html")
    r = qr("--out", sheet)
    assert r.exit_code == 0, r.output
    urls = dict(re.findall(r"window (W\d+): (\S+)", r.output))
    assert sorted(urls) == ["W01", "W02"] and urls["W02"] == url
    with open(sheet, encoding="utf-8") as f:
        html = f.read()
    assert html.count('<div class="card">') == 2 and html.count("<svg") == 2
    for w, u in urls.items():
        assert "窗口 %s" % w in html and u in html
        status, _, body = phone.get(urllib.parse.urlsplit(u).path)
        assert status == 200 and "没有待评价" in body, w
    r = qr("--out", os.path.join(hall.folder, "all.png"))
    assert r.exit_code != 0 and "one --window" in r.output
    r = qr("--window", "W09", "--out", card)
    assert r.exit_code != 0 and "W09" in r.output


def test_bad_input_gets_a_clear_page_and_stores_nothing(hall, api, terminals, hall_db):
    # if this fails, junk from the internet reaches the hall's database or crashes the page
    terms = terminals()
    phone = Phone(hall)
    open_prompt(api, terms)
    page = phone_token_path(phone, hall)
    for form in ({"level": "6"}, {"level": "0"}, {"level": ""}, {}, {"level": "1.0"},
                 {"level": "２"}):
        status, _, body = phone.post(page, form)
        assert status == 400 and "请点击下面五个按钮" in body, form
    status, _, body = phone.post(page, body=b"level=\xff\xfe")
    assert status == 400
    status, headers, body = phone.post(page, {"level": "4", "reason": "x" * 10240})
    assert status == 413 and "太长" in body
    assert ratings(hall_db) == []
    assert phone.post(page, {"level": "4"})[0] == 303
    more = page + "/more"
    status, _, body = phone.get(more)
    assert status == 200 and "服务态度" in body and "实名" in body
    status, _, body = phone.post(more, {"reason": "x" * 10240})
    assert status == 413 and "太长" in body
    for form in ({"reason": "x" * 300}, {"reason": "bribery"},
                 {"reason": "attitude", "name": NAME, "phone": PHONE},           # no consent
                 {"reason": "attitude", "name": "a\x00b", "phone": PHONE, "consent": "yes"},
                 {"reason": "attitude", "name": NAME, "phone": "call me", "consent": "yes"}):
        status, _, body = phone.post(more, form)
        assert status == 400 and 'class="err"' in body, form
    assert hall_db("SELECT COUNT(*) FROM reasons") == [(0,)]
    assert hall_db("SELECT COUNT(*) FROM mobile_raters") == [(0,)]


def test_a_flood_from_one_address_is_answered_429_with_a_page(hall, daemon, hall_db):
    # if this fails, one phone (or a script) can keep the daemon's writer busy for everyone
    phone = Phone(hall)
    statuses = [phone.post("/r/x.y", {"level": "1"})[0] for _ in range(PER_ADDRESS + 5)]
    assert statuses[:PER_ADDRESS] == [404] * PER_ADDRESS
    assert set(statuses[PER_ADDRESS:]) == {429}
    status, _, body = phone.get("/r/x.y")
    assert status == 429 and "频繁" in body


def test_the_mobile_listener_never_serves_the_console_or_the_window_api(hall, daemon, api):
    # if this fails, publishing the phone page to the internet publishes the console too
    phone = Phone(hall)
    for path in ("/", "/hall", "/window/W01", "/window/W01/state", "/static/window.js",
                 "/api/v1/windows/W01/state", "/openapi.json", "/docs", "/window/W01/qr.svg"):
        status, headers, body = phone.get(path)
        assert status == 404 and "页面不存在" in body, path
        assert "hcp_console" not in headers.get("set-cookie", "")
    status, _, _ = phone.post("/api/v1/windows/W01/finish", {"x": "1"})
    assert status == 404
    assert api.state("W01")["state"] == "idle"


def test_real_name_is_sealed_never_in_clear_in_the_hall_database_or_the_log(
        hall, api, terminals, hall_db, raw_client):
    # if this fails, a citizen's name and phone sit readable on the hall PC (第六条)
    alerts = []
    watcher = raw_client("observer")
    watcher.on_message = lambda c, u, m: alerts.append(m.payload)
    watcher.subscribe("hcp/v1/H01/alerts", qos=1)
    terms = terminals()
    phone = Phone(hall)
    open_prompt(api, terms)
    page = phone_token_path(phone, hall)
    assert phone.post(page, {"level": "5"})[0] == 303
    status, headers, _ = phone.post(page + "/more", {"reason": "attitude", "name": NAME,
                                                     "phone": PHONE, "consent": "yes"})
    assert status == 303 and headers["location"] == "thanks"
    status, _, body = phone.get(page + "/thanks")
    assert status == 200 and "感谢" in body
    (row,) = hall_db("SELECT r.seq, m.sealed FROM mobile_raters m JOIN ratings r"
                     " ON r.id = m.rating_id")
    with open(hall.mobile.identity_key_file) as f:
        key = bytes.fromhex(f.read().strip())
    assert phone_ratings.unseal(key, "H01", row[0], row[1]) == {"name": NAME, "phone": PHONE}
    assert hall_db("SELECT reason FROM ratings WHERE terminal='QR'") == [("attitude",)]
    # a bad review from a phone raises the same alert as one from a key, saying the channel
    wait_until(lambda: len(alerts) >= 2, what="the bad-review alerts")
    assert b'"channel": "QR"' in alerts[0] and b'"reason": "attitude"' in alerts[1]
    blob = b""
    for name in os.listdir(hall.folder):
        p = os.path.join(hall.folder, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                blob += f.read()
    for secret in (NAME, PHONE):
        assert secret.encode() not in blob, "%s found in clear in the hall's files" % secret
