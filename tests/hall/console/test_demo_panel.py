"""A kept demo's "simulated terminal" panel on the console's index page ([console]
demo_keypad), pressing keys through the demo's keypad socket (tools/sim/keypad.py) on a real
simulated terminal."""
import pytest
from playwright.sync_api import expect

from haochaping.tools.sim.keypad import KeypadServer
from tests.conftest import wait_until

LIVE = 10000  # ms: generous waits for live updates (never a speed assertion)


class _Keys:
    """A SimTerminal as the keypad uses a terminal (tools/sim/citizens.Terminal)."""

    def __init__(self, term):
        self.term = term

    def wait_ready(self, timeout=10.0):
        self.term.wait_session(timeout=timeout)

    def press(self, level):
        return self.term.press(level)

    def reason(self, seq, reason):
        return self.term.reason(seq, reason)


@pytest.fixture
def keypad(hall, sim, hall_db):
    terms = sim("T001")
    wait_until(lambda: hall_db("SELECT online FROM terminal_status WHERE terminal='T001'")
               == [(1,)], what="T001 online")
    server = KeypadServer(hall.folder, {"T001": _Keys(terms["T001"])}).start()
    yield server
    server.stop()


@pytest.mark.parametrize("console_settings", [{"demo_keypad": True}])
def test_a_new_user_plays_the_citizen_from_the_index_page_and_the_staff_page_shows_it(
        base, browser, keypad, hall_db):
    # if this fails, a new user trying the kept demo has no citizen to rate, and never sees the
    # whole flow from the staff page without hardware
    staff = browser()
    staff.goto(base + "/window/W01")
    staff.locator("#number").fill("S0101")
    staff.locator("#pin").fill("123456")
    staff.keyboard.press("Enter")
    staff.locator("#ticket").fill("A051")
    staff.keyboard.press("Enter")
    staff.keyboard.press("Enter")
    expect(staff.locator("#request-rating")).to_be_focused()
    staff.keyboard.press("Enter")
    expect(staff.locator("#status-text")).to_have_text("评价器已提示群众评价，请稍候")

    citizen = browser()
    citizen.goto(base + "/")
    expect(citizen.locator("#demo h2")).to_have_text("模拟评价器（演示）")
    citizen.locator("#demo-terminal").select_option("T001")
    citizen.locator("#demo-reason").select_option("attitude")
    citizen.locator("#demo-keys .key", has_text="非常不满意").click()
    expect(citizen.locator("#demo-result")).to_have_text("已按下：非常不满意（T001）", timeout=LIVE)
    expect(staff.locator("#status-text")).to_have_text("群众已评价：非常不满意", timeout=LIVE)
    wait_until(lambda: hall_db("SELECT level, reason FROM ratings") == [(5, "attitude")],
               what="the rating and its reason stored")


def test_a_real_hall_has_no_demo_panel_and_no_press_route(client):
    # if this fails, a real hall's index page offers keys that press nothing, or anyone on the
    # LAN can post presses to the daemon
    c = client()
    page = c.get("/")
    assert page.status == 200 and b'id="demo"' not in page.body
    r = c.post("/demo/press", {"terminal": "T001", "level": 1}, headers={"Accept": "*/*"})
    assert r.status in (404, 405)


@pytest.mark.parametrize("console_settings", [{"demo_keypad": True}])
def test_the_demo_panel_says_so_when_the_demo_keypad_is_gone(client):
    # if this fails, a press after the demo stopped fails without a word
    c = client()
    assert b'id="demo"' in c.get("/").body
    r = c.post("/demo/press", {"terminal": "T001", "level": 1})
    assert r.status == 503 and "hcp demo --keep" in r.json["error"]
    assert c.post("/demo/press", {"terminal": "T001", "level": 1}, csrf=False).status == 403
