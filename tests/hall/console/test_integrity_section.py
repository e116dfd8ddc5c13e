"""The duty manager's page shows today's integrity findings (issue 20), worked out from the
hall database by the real daemon process."""
import random
import sqlite3
import time

from tests.conftest import wait_until


def _day(hall, reach_over_at="W01"):
    """Today's served and rated transactions at three windows, written as the daemon writes
    them; at one window every rating comes a moment after 请评价 (someone reaching over)."""
    rnd = random.Random(3)
    c = sqlite3.connect(hall.hall.database, isolation_level=None)
    now = time.time()
    start = now - (now + 8 * 3600) % 86400 + 60   # today, from a minute past midnight
    seq = 0
    for w in ("W01", "W02", "W03"):
        for i in range(30):
            at = start + rnd.uniform(0, max(60, now - start - 120))
            delay = rnd.uniform(0.1, 0.4) if w == reach_over_at else rnd.uniform(5, 15)
            tx = c.execute("INSERT INTO transactions (window, ticket, staff, started_at,"
                           " finished_at, token, prompt_closed_at, prompt_closed_by) VALUES"
                           " (?, ?, 'S0101', ?, ?, ?, ?, 'rated')",
                           (w, "%s-%03d" % (w, i), at - 300, at, "tok-%s-%d" % (w, i),
                            at + delay)).lastrowid
            seq += 1
            rid = c.execute("INSERT INTO ratings (terminal, seq, level, token, rated_at,"
                            " received_at, outcome, transaction_id) VALUES ('T009', ?, ?, ?,"
                            " ?, ?, 'counted', ?)", (seq, 1 if w == reach_over_at else
                                                     rnd.choice((1, 1, 2, 3)),
                                                     "tok-%s-%d" % (w, i), at + delay,
                                                     at + delay, tx)).lastrowid
            c.execute("UPDATE transactions SET rating_id=? WHERE id=?", (rid, tx))
    c.close()


def test_the_manager_page_shows_todays_integrity_findings(hall, client):
    # if this fails, the duty manager learns of staff pressing for citizens only from the
    # quarter's report, weeks later
    _day(hall)
    c = client()
    assert c.sign_in("/hall", "M01").status == 200
    st = c.get("/hall/state").json
    units = [f["unit"] for f in st["integrity"]]
    assert "window:H01/W01" in units and not {"window:H01/W02", "window:H01/W03"} & set(units)
    assert any("代按" in f["explanation"] for f in st["integrity"])
    page = c.get("/hall")
    assert "今日评价真实性线索" in page.body.decode()


def test_an_honest_day_shows_no_finding_on_the_manager_page(hall, client):
    # if this fails, honest windows are named on the wall screen for all the hall to see
    _day(hall, reach_over_at=None)
    c = client()
    assert c.sign_in("/hall", "M01").status == 200
    wait_until(lambda: c.get("/hall/state").json["integrity"] == [], what="no findings")
