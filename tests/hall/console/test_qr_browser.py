"""The QR channel (评价二维码, 第五条) in a real headless Chromium at a phone's size (390×844):
the staff page shows the open prompt's code, the phone opens the URL the code carries and
rates, the staff page shows it at once, and the key terminal's press for the same 办件 is a
duplicate (and the other way round); the duty manager's page shows the phone's bad review
as an alert, marked 扫码."""
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.hall.test_qr_channel import add_mobile

from .conftest import screenshot
from .test_browser import LIVE, _sign_in, _wait_online

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def hall(hall):
    """The console's hall with the [mobile] listener on."""
    return add_mobile(hall)


def _phone(browser):
    page = browser()
    page.set_viewport_size(PHONE)
    return page


def _press_with(term, session, level):
    """A key press carrying the prompt's token (it left before the daemon's clear arrived)."""
    with term.lock:
        term.core.session = session
    return term.press(level)


def test_a_phone_rates_from_the_staff_page_qr_and_a_later_key_press_is_a_duplicate(
        base, browser, sim, hall_db, tmp_path):
    # if this fails, a citizen who scans the window's code cannot rate, the rating is bound to
    # the wrong 办件, staff do not see it, or the key terminal counts the same 办件 again
    term = sim("T001")["T001"]
    _wait_online(hall_db, "T001")
    staff = browser()
    _sign_in(staff, base, "/window/W01", "S0101", "123456")
    staff.locator("#ticket").fill("A017")
    staff.keyboard.press("Enter")
    staff.keyboard.press("Enter")
    staff.locator("#request-rating").click()
    expect(staff.locator("#qr")).to_be_visible(timeout=LIVE)
    session = term.wait_session(timeout=10)
    assert session is not None
    img = staff.locator("#qr-img")
    expect(img).to_have_attribute("src", re.compile(r"/window/W01/qr\.svg"))
    wait_until(lambda: staff.evaluate(
        "document.getElementById('qr-img').naturalWidth") > 0, what="the QR image drawn")
    url = _state_url(staff)
    manager = browser()
    _sign_in(manager, base, "/hall", "M01", "654321")
    expect(manager.locator("#no-alerts")).to_be_visible()

    phone = _phone(browser)
    phone.goto(url)
    expect(phone.locator("h1")).to_have_text("请为本次服务评价")
    buttons = phone.locator("button.lv")
    expect(buttons).to_have_count(5)
    box = buttons.first.bounding_box()
    assert box["width"] >= 300 and box["height"] >= 48, "the buttons are not thumb-sized"
    screenshot(phone, "qr-phone.png", tmp_path)
    phone.get_by_role("button", name="不满意", exact=True).click()
    expect(phone.locator("h1")).to_have_text("已收到您的评价：不满意")
    screenshot(phone, "qr-phone-reason.png", tmp_path)
    phone.get_by_role("button", name="服务效率").click()
    expect(phone.locator("h1")).to_have_text("感谢您的评价")

    expect(staff.locator("#status-text")).to_have_text("群众已评价：不满意（扫码）", timeout=LIVE)
    expect(staff.locator("#qr")).to_be_hidden(timeout=LIVE)
    # the duty manager is alerted as for a key's bad review, and told it came by phone
    alert = manager.locator("#alerts .alert").first
    expect(alert).to_contain_text("不满意（扫码）", timeout=LIVE)
    expect(alert).to_contain_text("服务效率")
    expect(alert).to_contain_text("W01")
    _press_with(term, session, 1)
    wait_until(lambda: len(hall_db("SELECT 1 FROM ratings")) == 2, what="the key press stored")
    (tx,) = hall_db("SELECT id, rating_id FROM transactions")
    assert hall_db("SELECT terminal, level, outcome, transaction_id, channel, reason FROM"
                   " ratings ORDER BY id") == [("QR", 4, "counted", tx[0], "QR", "efficiency"),
                                               ("T001", 1, "duplicate", tx[0], "PJQ", None)]
    assert hall_db("SELECT terminal FROM ratings WHERE id=?", tx[1]) == [("QR",)]

    # the other way round: the key first, then the phone opens the code it saw
    staff.locator("#ticket").fill("A018")
    staff.keyboard.press("Enter")
    staff.keyboard.press("Enter")
    staff.locator("#request-rating").click()
    expect(staff.locator("#qr")).to_be_visible(timeout=LIVE)
    session = term.wait_session(timeout=10, token_not=session["token"])
    url = _state_url(staff)
    term.press(2)
    expect(staff.locator("#status-text")).to_have_text("群众已评价：满意", timeout=LIVE)
    phone.goto(url)
    expect(phone.locator("h1")).to_have_text("已经评价过了")
    assert len(hall_db("SELECT 1 FROM ratings")) == 3


def _state_url(page):
    """The QR's URL, as the staff page's state carries it."""
    return page.evaluate("""async () => {
        const r = await fetch(location.pathname + "/state", {credentials: "same-origin"});
        return (await r.json()).qr_url;
    }""")
