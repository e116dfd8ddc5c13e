"""The console in a real headless Chromium against the real daemon, broker and simulated
terminals: what window staff and the duty manager see, without reloading the page."""
import pytest
from playwright.sync_api import expect

from haochaping.protocol import messages, topics
from tests.conftest import wait_until

from .conftest import screenshot

LIVE = 10000  # ms: generous waits for live updates (never a speed assertion)


def _wait_online(hall_db, *terms):
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM terminal_status WHERE online=1 AND terminal IN"
                               " (%s)" % ",".join("?" * len(terms)), *terms)[0][0] == len(terms),
               what="terminals online at the daemon")


def _sign_in(page, base, place, number, pin):
    page.goto(base + place)
    page.locator("#number").fill(number)
    page.locator("#pin").fill(pin)
    page.keyboard.press("Enter")


def test_staff_scan_a_ticket_press_request_rating_and_see_the_rating_live(
        base, browser, sim, hall_db, tmp_path):
    # if this fails, window staff cannot bind the terminal to the citizen they serve, or do not
    # see that the citizen rated without reloading the page
    term = sim("T001")["T001"]
    _wait_online(hall_db, "T001")
    page = browser()
    _sign_in(page, base, "/window/W01", "S0101", "123456")
    expect(page.locator("#me-name")).to_contain_text("张三")
    expect(page.locator("#ticket")).to_be_focused()  # ready for the barcode scanner
    expect(page.locator("#status-text")).to_have_text("等待中：请输入或扫描下一位群众的票号")
    expect(page.locator("#terminals")).to_contain_text("T001 · 在线")
    page.evaluate("window.__notReloaded = true")

    # keyboard only: the scanner types the ticket and Enter, staff type the 事项 and Enter
    page.keyboard.type("A017")
    page.keyboard.press("Enter")
    expect(page.locator("#item")).to_be_focused()
    page.keyboard.type("户籍证明 530100-001")
    page.keyboard.press("Enter")
    expect(page.locator("#status-text")).to_have_text("办理中：办结后请按「请评价」")
    expect(page.locator("#status-sub")).to_have_text("正在办理：A017")
    expect(page.locator("#request-rating")).to_be_focused()
    page.keyboard.press("Enter")  # 「请评价」
    expect(page.locator("#status-text")).to_have_text("评价器已提示群众评价，请稍候")
    expect(page.locator("#ticket")).to_be_focused()

    s = term.wait_session(timeout=10)
    assert s is not None and s["window"] == "W01", "the terminal never showed the prompt"
    term.press(2)
    expect(page.locator("#status-text")).to_have_text("群众已评价：满意", timeout=LIVE)
    assert page.evaluate("window.__notReloaded") is True, "the page reloaded to show the rating"
    expect(page.locator("#ticket")).to_be_focused()  # ready for the next citizen
    screenshot(page, "console-window.png", tmp_path)

    rows = hall_db("SELECT ticket, item, staff FROM transactions")
    assert rows == [("A017", "户籍证明 530100-001", "S0101")]
    actions = [r[0] for r in hall_db("SELECT action FROM audit WHERE actor='staff:S0101'"
                                     " ORDER BY id")]
    assert actions == ["console.sign-in", "console.start", "console.request-rating"]


@pytest.mark.parametrize("prompt_timeout", [5])
def test_staff_see_not_rated_in_time_and_terminal_offline_live(
        base, browser, sim, hall_db, raw_client):
    # if this fails, staff wait for a rating that will never come, or do not learn that their
    # terminal is off and citizens cannot rate
    sim("T001")
    _wait_online(hall_db, "T001")
    page = browser()
    _sign_in(page, base, "/window/W01", "S0101", "123456")
    page.locator("#ticket").fill("A018")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.locator("#request-rating")).to_be_enabled()
    page.locator("#request-rating").click()
    expect(page.locator("#status-text")).to_have_text("评价器已提示群众评价，请稍候")
    expect(page.locator("#status-text")).to_have_text("群众未在规定时间内评价", timeout=LIVE + 5000)
    page.locator("#ticket").fill("A019")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.locator("#status-text")).to_have_text("办理中：办结后请按「请评价」")
    # the terminal's last will, as the broker publishes it when the terminal drops off
    c = raw_client("T001")
    c.publish(topics.topic("H01", "T001", topics.STATUS), messages.encode_status("T001", False),
              qos=1, retain=True).wait_for_publish()
    expect(page.locator("#status-text")).to_have_text("评价器离线，请联系大厅信息技术人员",
                                                      timeout=LIVE)
    expect(page.locator("#terminals")).to_contain_text("T001 · 离线")


def test_manager_sees_a_very_dissatisfied_rating_as_an_alert_live(
        base, browser, sim, hall_db, client, api):
    # if this fails, the duty manager does not learn of a 非常不满意 while the citizen is still
    # in the hall, or not at which window, from whom, or why
    terms = sim("T001", "T002")
    _wait_online(hall_db, "T001", "T002")
    # a morning at W02 through the queue system's API: three good ratings, one walk-away
    for n, level in enumerate((1, 1, 2, None)):
        api.start("W02", "B%03d" % n, item="530100-002", staff="S0201")
        api.finish("W02")
        s = terms["T002"].wait_session(timeout=10)
        assert s is not None
        if level:
            terms["T002"].press(level)
            wait_until(lambda: terms["T002"].backlog() == 0, what="ack")
    api.start("W02", "B099", staff="S0201")
    page = browser()
    _sign_in(page, base, "/hall", "M01", "654321")
    expect(page.locator("#me-name")).to_contain_text("李四")
    expect(page.locator("#no-alerts")).to_be_visible()
    expect(page.locator("#counts .level-1 .n")).to_have_text("2")
    expect(page.locator("#windows")).to_contain_text("T003 离线")
    page.evaluate("window.__notReloaded = true")

    staff_pc = client()
    assert staff_pc.sign_in("/window/W01", "S0101").status == 200
    r = staff_pc.post("/window/W01/start", {"ticket": "A020", "item": "530100-007"})
    assert r.status == 200
    assert staff_pc.post("/window/W01/finish").status == 200
    assert terms["T001"].wait_session(timeout=10) is not None
    seq = terms["T001"].press(5)
    alert = page.locator("#alerts .alert").first
    expect(alert).to_contain_text("非常不满意", timeout=LIVE)
    expect(alert).to_contain_text("W01")
    expect(alert).to_contain_text("张三（S0101）")
    expect(alert).to_contain_text("A020")
    terms["T001"].reason(seq, "attitude")
    expect(alert).to_contain_text("服务态度", timeout=LIVE)
    expect(page.locator("#counts .level-5 .n")).to_have_text("1")
    expect(page.locator("#rate")).to_have_text("80.0%")  # 3 of 4 closed W02 tickets, and A020
    expect(page.locator("#windows")).to_contain_text("张三（S0101）")
    assert page.evaluate("window.__notReloaded") is True


@pytest.mark.parametrize("console_settings", [{"pin_failures": 3}])
def test_a_wrong_pin_is_refused_and_then_sign_in_is_locked(base, browser, hall_db):
    # if this fails, someone at a staff PC can guess PINs as fast as they can type
    page = browser()
    page.goto(base + "/window/W01")
    for _ in range(3):
        page.locator("#number").fill("S0101")
        page.locator("#pin").fill("000000")
        page.keyboard.press("Enter")
        expect(page.locator("#sign-in-error")).to_have_text("工号或 PIN 错误")
        page.evaluate("document.getElementById('sign-in-error').textContent = ''")
    page.locator("#number").fill("S0101")
    page.locator("#pin").fill("123456")  # the right PIN, too late
    page.keyboard.press("Enter")
    expect(page.locator("#sign-in-error")).to_contain_text("PIN 错误次数过多")
    expect(page.locator("#work")).to_be_hidden()
    assert hall_db("SELECT COUNT(*) FROM audit WHERE action='console.sign-in-failed'") == [(3,)]


@pytest.mark.parametrize("console_settings", [{"session_idle_s": 2}])
def test_an_expired_session_shows_the_sign_in_form_and_signing_in_again_works(base, browser):
    # if this fails, staff keep a page that looks signed in but whose clicks do nothing, or
    # must sign in twice after their session ended
    page = browser()
    _sign_in(page, base, "/window/W01", "S0101", "123456")
    expect(page.locator("#work")).to_be_visible()
    expect(page.locator("#sign-in-error")).to_have_text("登录已过期，请重新登录", timeout=LIVE)
    expect(page.locator("#work")).to_be_hidden()
    expect(page.locator("#pin")).to_be_focused()  # the staff number is still filled in
    expect(page.locator("#number")).to_have_value("S0101")
    page.keyboard.type("123456")
    page.keyboard.press("Enter")
    expect(page.locator("#work")).to_be_visible()
    expect(page.locator("#ticket")).to_be_focused()


def test_an_unknown_window_address_says_so_in_chinese(base, browser):
    # if this fails, a mistyped window address shows raw JSON or an empty page, and no way on
    page = browser()
    page.goto(base + "/window/W99")
    expect(page.locator(".error")).to_have_text("没有这个窗口")
    expect(page.locator("a.big-link", has_text="窗口 W02")).to_have_attribute("href", "/window/W02")


def test_a_window_address_in_lower_case_opens_the_windows_page(base, browser):
    # if this fails, staff who type /window/w01 get a second, empty window W01 or an error
    page = browser()
    page.goto(base + "/window/w01")
    assert page.url == base + "/window/W01"
    expect(page.locator("#heading")).to_have_text("窗口 W01 · 好差评")


@pytest.mark.parametrize("path", ["/hal", "/hall/stat", "/window/W01/x/y", "/static/nope.css"])
def test_a_mistyped_console_address_shows_a_chinese_page_not_raw_json(base, browser, path):
    # if this fails, a typo in the address bar shows {"error": "输入有误：{detail}"}
    page = browser()
    r = page.goto(base + path)
    assert r.status == 404
    expect(page.locator(".error")).to_have_text("没有这个页面，请检查地址")
    assert "{" not in page.content().split("<main>")[1]


def test_empty_fields_are_told_in_chinese_by_the_page_not_the_browsers_bubble(base, browser):
    # if this fails, staff pressing Enter on an empty field read Chromium's English "Please
    # fill out this field", or nothing at all
    page = browser()
    page.goto(base + "/window/W01")
    page.locator("#number").fill("S0101")
    page.keyboard.press("Enter")
    expect(page.locator("#sign-in-error")).to_have_text("请输入工号和 PIN 密码")
    expect(page.locator("#pin")).to_be_focused()
    page.locator("#pin").fill("123456")
    page.keyboard.press("Enter")
    expect(page.locator("#work")).to_be_visible()
    expect(page.locator("#ticket")).to_be_focused()
    page.keyboard.press("Enter")  # to 事项
    page.keyboard.press("Enter")  # 「开始办理」 with no ticket
    expect(page.locator("#work-error")).to_have_text("请输入或扫描票号 / 办件编号")
    assert page.evaluate("document.getElementById('start-form').checkValidity()") is False
    assert page.evaluate("document.getElementById('start-form').noValidate") is True


def test_after_a_daemon_restart_the_page_stays_signed_in_and_works(base, browser, daemon,
                                                                   hall_db):
    # if this fails, every restart of the hall server drops the staff PCs (and the manager's
    # wall screen) to the sign-in form, or leaves a page that seems alive but does nothing
    page = browser()
    _sign_in(page, base, "/window/W01", "S0101", "123456")
    expect(page.locator("#work")).to_be_visible()
    daemon.kill()
    expect(page.locator("#reconnecting")).to_be_visible(timeout=LIVE)
    daemon.start()
    expect(page.locator("#reconnecting")).to_be_hidden(timeout=LIVE)
    expect(page.locator("#work")).to_be_visible()
    expect(page.locator("#sign-in")).to_be_hidden()
    page.locator("#ticket").fill("A021")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.locator("#status-sub")).to_have_text("正在办理：A021")
    assert hall_db("SELECT ticket, staff FROM transactions") == [("A021", "S0101")]


def test_signing_in_at_another_window_signs_the_first_page_out_saying_where(base, browser):
    # if this fails, staff who moved to another window read 登录已过期 on the first and think
    # the system is broken; or two people at one window do not know of each other
    first = browser()
    _sign_in(first, base, "/window/W01", "S0101", "123456")
    expect(first.locator("#work")).to_be_visible()
    colleague = browser()
    _sign_in(colleague, base, "/window/W01", "S0201", "234567")
    expect(colleague.locator("#others")).to_have_text("注意：本窗口另有 张三（S0101） 已登录")
    expect(first.locator("#others")).to_have_text("注意：本窗口另有 王五（S0201） 已登录",
                                                  timeout=LIVE)
    second = browser()
    _sign_in(second, base, "/window/W02", "S0101", "123456")
    expect(second.locator("#work")).to_be_visible()
    expect(first.locator("#sign-in-error")).to_have_text(
        "已在其他窗口登录（窗口 W02），本页已退出", timeout=LIVE)
    expect(first.locator("#work")).to_be_hidden()
    expect(colleague.locator("#others")).to_be_hidden(timeout=LIVE)
