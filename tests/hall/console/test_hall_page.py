"""The duty manager's page (/hall) in a real headless Chromium against the real daemon, broker
and simulated terminals: what fits a phone and a wall screen, acknowledging alerts, the sound."""
import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until

from .conftest import screenshot

LIVE = 10000  # ms: generous waits for live updates (never a speed assertion)

# [text, lines] of every element matching a selector: its text's line boxes, those whose middles
# are within a few pixels of each other counted as one line
_LINES = """(sel) => Array.from(document.querySelectorAll(sel)).map(e => {
  const r = document.createRange(); r.selectNodeContents(e);
  const tops = Array.from(r.getClientRects()).filter(x => x.width > 0)
    .map(x => x.top + x.height / 2)
    .sort((a, b) => a - b);
  let lines = tops.length ? 1 : 0;
  for (let i = 1; i < tops.length; i++) if (tops[i] - tops[i - 1] > 8) lines++;
  return [e.textContent, lines]; })"""
_OVERFLOW = """() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"""


def _wait_online(hall_db, *terms):
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM terminal_status WHERE online=1 AND terminal IN"
                               " (%s)" % ",".join("?" * len(terms)), *terms)[0][0] == len(terms),
               what="terminals online at the daemon")


def _rate(api, term, window, ticket, level, staff, reason=None):
    """A citizen served at `window` rates `level` (and gives `reason`) on `term`."""
    api.start(window, ticket, item="530100-002", staff=staff)
    api.finish(window)
    assert term.wait_session(timeout=10) is not None
    seq = term.press(level)
    if reason:
        term.reason(seq, reason)
    wait_until(lambda: term.backlog() == 0, what="ack")


def _sign_in(page, base, number, pin):
    page.goto(base + "/hall")
    page.locator("#number").fill(number)
    page.locator("#pin").fill(pin)
    page.keyboard.press("Enter")
    expect(page.locator("#work")).to_be_visible()


@pytest.fixture
def busy_hall(sim, hall_db, api, client):
    """A morning: staff signed in at W01 and W02, tickets with long numbers, three bad reviews."""
    terms = sim("T001", "T002", "T003")
    _wait_online(hall_db, "T001", "T002", "T003")
    _rate(api, terms["T002"], "W02", "B2026112500017", 5, "S0201", "attitude")
    _rate(api, terms["T002"], "W02", "B2026112500018", 4, "S0201", "efficiency")
    _rate(api, terms["T001"], "W01", "A2026112500020", 5, "S0101")
    _rate(api, terms["T003"], "W03", "C2026112500001", 1, "")
    api.start("W01", "A2026112500021", item="530100-007", staff="S0101")
    for window, number in (("W01", "S0101"), ("W02", "S0201")):
        assert client().sign_in("/window/" + window, number).status == 200
    return terms


def _layout_facts(page):
    width, client_width = page.evaluate(_OVERFLOW)
    assert width <= client_width, "the page scrolls sideways (%d > %d px)" % (width, client_width)
    for sel in (".alert .lv", ".counts .name", ".tile .w", ".tile .ticket", ".alert .ticket",
                ".alert .w", ".tile .person", ".term"):
        found = page.evaluate(_LINES, sel)
        assert found, "nothing matches %s" % sel
        broken = [text for text, lines in found if lines != 1]
        assert broken == [], "%s breaks over lines: %s" % (sel, broken)
    windows = page.locator(".windows-card").bounding_box()
    alerts = page.locator(".alerts-card").bounding_box()
    return windows, alerts


def test_the_manager_page_fits_a_390_px_phone(base, browser, busy_hall, tmp_path):
    # if this fails, the duty manager walking the hall with a phone scrolls sideways, reads
    # 非常不满意 one character a line, or finds the windows under a long list of alerts
    page = browser()
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, base, "M01", "654321")
    expect(page.locator("#alerts .alert")).to_have_count(3)
    expect(page.locator("#windows")).to_contain_text("A2026112500021")
    windows, alerts = _layout_facts(page)
    assert windows["y"] < alerts["y"], "the windows overview is not first"
    screenshot(page, "console-hall-phone.png", tmp_path)


def test_the_manager_page_uses_a_1920_px_wall_screen(base, browser, busy_hall, tmp_path):
    # if this fails, the wall screen in the duty office wraps window ids and tickets while half
    # of it is empty, or shows the alerts where the windows overview should be
    page = browser()
    page.set_viewport_size({"width": 1920, "height": 1080})
    _sign_in(page, base, "M01", "654321")
    expect(page.locator("#alerts .alert")).to_have_count(3)
    expect(page.locator("#windows")).to_contain_text("王五（S0201）")
    windows, alerts = _layout_facts(page)
    assert windows["width"] >= 1000, "the windows overview uses %d of 1920 px" % windows["width"]
    assert windows["x"] < alerts["x"] and windows["y"] <= alerts["y"], \
        "the windows overview is not first (left)"
    tiles = page.locator(".tile")
    assert tiles.nth(0).bounding_box()["y"] == tiles.nth(1).bounding_box()["y"], \
        "one window a row on a wall screen"
    screenshot(page, "console-hall.png", tmp_path)


def test_the_manager_page_on_a_1280_px_office_pc_keeps_ids_and_tickets_on_one_line(
        base, browser, busy_hall, tmp_path):
    # if this fails, the duty office's PC wraps window ids and tickets while half of the page
    # is empty, or shows the alerts before the windows overview
    page = browser()
    page.set_viewport_size({"width": 1280, "height": 800})
    _sign_in(page, base, "M01", "654321")
    expect(page.locator("#alerts .alert")).to_have_count(3)
    expect(page.locator("#windows")).to_contain_text("A2026112500021")
    windows, alerts = _layout_facts(page)
    assert windows["width"] >= 640, "the windows overview uses %d of 1280 px" % windows["width"]
    assert windows["x"] < alerts["x"] and windows["y"] <= alerts["y"], \
        "the windows overview is not first (left)"
    screenshot(page, "console-hall-1280.png", tmp_path)


def test_the_manager_acknowledges_an_alert_and_the_page_says_who_and_when(
        base, browser, sim, hall_db, api):
    # if this fails, two managers on duty both call the same unhappy citizen, or nobody knows
    # whether anybody did; and the acknowledgement leaves no trace in the audit log
    terms = sim("T001")
    _wait_online(hall_db, "T001")
    _rate(api, terms["T001"], "W01", "A031", 5, "S0101", "attitude")
    page = browser()
    _sign_in(page, base, "M01", "654321")
    alert = page.locator("#alerts .alert").first
    expect(page.locator("#alerts-summary")).to_have_text("今日 1 条，未确认 1 条")
    alert.locator("button.ack").click()
    expect(alert.locator(".ack-by")).to_contain_text("李四（M01）")
    expect(alert.locator(".ack-by")).to_contain_text("已确认")
    expect(alert.locator("button.ack")).to_have_count(0)
    expect(page.locator("#alerts-summary")).to_have_text("今日 1 条，未确认 0 条")
    rating = hall_db("SELECT id FROM ratings")[0][0]
    assert hall_db("SELECT acked_by FROM console_alert_acks WHERE rating=?", rating) == [("M01",)]
    rows = hall_db("SELECT actor, detail FROM audit WHERE action='console.alert-ack'")
    assert len(rows) == 1 and rows[0][0] == "staff:M01" and '"rating": %d' % rating in rows[0][1]
    page.reload()  # kept by the daemon, not the page
    expect(page.locator("#alerts .alert .ack-by")).to_contain_text("李四（M01）")


def test_the_alert_sound_is_off_until_the_manager_turns_it_on_and_stays_on(
        base, browser, sim, hall_db, api):
    # if this fails, the manager's wall screen beeps at a hall full of citizens unasked, or
    # forgets the sound the manager switched on at the next reload
    terms = sim("T001")
    _wait_online(hall_db, "T001")
    page = browser()
    _sign_in(page, base, "M01", "654321")
    expect(page.locator("#sound")).not_to_be_checked()
    _rate(api, terms["T001"], "W01", "A041", 5, "S0101")
    expect(page.locator("#alerts .alert")).to_have_count(1, timeout=LIVE)
    assert page.evaluate("document.body.dataset.sounds") is None
    page.locator("#sound").check()
    assert page.evaluate("document.body.dataset.sounds") == "1"  # a sample, on the click
    page.reload()
    expect(page.locator("#sound")).to_be_checked()
    expect(page.locator("#alerts .alert")).to_have_count(1)
    _rate(api, terms["T001"], "W01", "A042", 4, "S0101")
    expect(page.locator("#alerts .alert")).to_have_count(2, timeout=LIVE)
    wait_until(lambda: page.evaluate("document.body.dataset.sounds") == "1",
               what="the new alert to sound")


def test_the_alert_list_keeps_the_newest_twelve_and_counts_the_rest(client, sim, hall_db, api):
    # if this fails, the alert list grows all day and pushes everything else off the screen
    terms = sim("T001")
    _wait_online(hall_db, "T001")
    for n in range(14):
        _rate(api, terms["T001"], "W01", "A%03d" % n, 5 if n % 2 else 4, "S0101")
    c = client()
    assert c.sign_in("/hall", "M01").status == 200
    st = c.get("/hall/state").json
    assert [a["ticket"] for a in st["alerts"]] == ["A%03d" % n for n in range(13, 1, -1)]
    assert (st["alerts_total"], st["alerts_open"]) == (14, 14)
