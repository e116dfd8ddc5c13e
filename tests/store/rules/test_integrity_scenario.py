"""Integrity through the real chain: terminals (over MQTT, their own credentials) -> the hall
daemon -> its forwarder -> the store over HTTPS; then `hcp integrity report`. An honest hall's
windows give no finding; each scripted way of gaming the ratings is found at its window.

Times are compressed (citizens press 0.6-3 s after the prompt instead of 5-15 s, and a press is
sent HOLD_S after it, as the firmware holds it for its 3 s correction window), so the test
passes thresholds to match (docs/integrity.md gives the defaults for real time). W02's terminal
runs the older firmware (no press delay); the others report theirs (firmware 0.3.0)."""
import json
import random
import threading
import time

import pytest

from haochaping.daemon.hall import api_client
from haochaping.daemon.rules import integrity as rules
from haochaping.daemon.rules.integrity import Thresholds
from haochaping.daemon.store import access
from haochaping.daemon.store import integrity_report as integrity
from haochaping.protocol import levels
from haochaping.tools.sim import hall_kit, processes
from haochaping.tools.sim.terminal_sim import SimTerminal
from tests.conftest import wait_until
from tests.store.conftest import backlog

from .conftest import hcp

WINDOWS = ("W01", "W02", "W03", "W04", "W05", "W06", "W07", "W08", "W09")
N = 22   # transactions per window
T = Thresholds(min_cases=15, fixed_offset_std_s=0.25, edge_minutes=0.1)  # edges of 6 s
WEIGHTS = (55, 25, 12, 5, 3)
HOLD_S = 1.5   # the correction window, compressed: every press reaches the hall this much later
OLD_FIRMWARE = "W02"
BURST_GAP_S = 60   # the bursts window's day: a burst, a minute of nothing, a burst


@pytest.fixture
def chain(tmp_path, store):
    cfg = hall_kit.forward_to(
        hall_kit.create(str(tmp_path / "hall"), windows=WINDOWS, timeout_s=30),
        store.url, store.ca, store.key_file, batch_size=50)
    broker = processes.Mosquitto(hall_kit.broker_conf(cfg), cfg.mqtt.port).start()
    daemon = processes.DaemonProcess(cfg).start()
    terms = {}
    for dev in hall_kit.devices(cfg.folder):
        terms[dev["window"]] = SimTerminal(cfg.hall.id, dev["terminal"],
                                           bytes.fromhex(dev["key"]), "127.0.0.1",
                                           cfg.mqtt.port, dev["mqtt"]["password"],
                                           press_delay=dev["window"] != OLD_FIRMWARE).start()
    for t in terms.values():
        wait_until(t.client.is_connected, what="terminal connected")
    yield cfg, terms
    for t in terms.values():
        t.stop()
    daemon.kill()
    broker.stop()


def _serve(api, window, term, behaviour, errors):
    r = random.Random(window)
    last = None
    try:
        # two staff at one_skips: N each; too_good is judged against a hall whose other
        # gaming windows raise the bar (W03, W05 give nothing but 非常满意 too): its day is 2N
        for n in range(2 * N if behaviour in ("one_skips", "too_good") else N):
            if behaviour == "bursts" and n == N // 2:
                time.sleep(BURST_GAP_S)   # the doors open: nothing rated until closing time
            staff = "S%s0%d" % (window[-1], 1 + (behaviour == "one_skips" and n % 2))
            api.start(window, "%s-%03d" % (window, n), staff=staff)
            if behaviour == "skips" and n % 5:
                continue               # the next ticket is called: no 请评价
            if behaviour == "one_skips" and staff.endswith("2"):
                continue               # the second staff member never asks; the first does
            api.finish(window)
            s = term.wait_session(timeout=5, token_not=last)
            assert s is not None, window
            last = s["token"]
            if behaviour in ("honest", "one_skips"):
                if r.random() < 0.08:
                    continue           # walks away
                time.sleep(r.uniform(0.6, 3.0))
                level = r.choices(range(1, 6), WEIGHTS)[0]
            elif behaviour == "reaches_over":
                level = 1              # the staff's finger, at once
            elif behaviour == "auto_posts":
                time.sleep(1.0)        # integration code: a fixed time after the service
                level = 1
            elif behaviour == "too_good":
                time.sleep(r.uniform(0.6, 1.5))   # quick citizens, but 刷好评: all 非常满意
                level = 1
            elif behaviour == "bursts":    # filled in before opening and after closing
                level = r.choices(range(1, 6), WEIGHTS)[0]
                term.press(level, pressed_at=time.time())   # no citizen: no correction wait
                continue
            elif behaviour == "same_reasons":
                time.sleep(r.uniform(0.6, 3.0))
                level = 4 if n >= 5 else 1
            else:                      # skips: the few prompts it opens are rated honestly
                time.sleep(r.uniform(0.6, 3.0))
                level = r.choices(range(1, 6), WEIGHTS)[0]
            pressed = time.time()
            time.sleep(HOLD_S)         # the terminal's correction window, then it sends
            seq = term.press(level, pressed_at=pressed)
            if levels.is_bad(level):
                term.reason(seq, "efficiency" if behaviour == "same_reasons"
                            else r.choice(levels.REASONS)[0])
    except Exception as e:
        errors.append("%s: %r" % (window, e))


@pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)
def test_an_honest_hall_yields_no_finding_and_each_gaming_window_is_found(chain, store,
                                                                          tmp_path):
    # if this fails, the integrity report either names honest windows or misses staff who
    # press for citizens, skip the prompt, auto-post good reviews, fill in bad ones in bulk,
    # collect nothing but 非常满意, fill in the day's ratings before opening and after closing,
    # or (one of a window's two staff) never ask
    cfg, terms = chain
    api = api_client.WindowApi(cfg)
    plan = {"W01": "honest", "W02": "honest", "W03": "reaches_over", "W04": "skips",
            "W05": "auto_posts", "W06": "same_reasons", "W07": "too_good", "W08": "bursts",
            "W09": "one_skips"}
    errors = []
    threads = [threading.Thread(target=_serve, args=(api, w, terms[w], b, errors))
               for w, b in plan.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    assert errors == []
    for w in WINDOWS:   # the last transaction ends with the day
        api.start(w, "%s-end" % w)
    from tests.conftest import hall_query
    wait_until(lambda: all(t.backlog() == 0 for t in terms.values()), timeout=60,
               what="every rating acked")
    wait_until(lambda: backlog(hall_query(cfg)) == 0, timeout=60, what="all forwarded")
    period = time.strftime("%Y-%m", time.localtime())
    rep = integrity.report(store.open(), period, T)
    found = {(f["detector"], f["unit"]) for f in rep["findings"]}
    by_window = {u.split("/")[-1] for _, u in found}
    assert not by_window & {"W01", "W02", "S101", "S201"}, found       # no honest unit named
    # the staff's press at once is seen by the terminal's own delay: the hall's delay (the
    # correction window on every press) puts it within reach of citizens'
    (reach,) = [f for f in rep["findings"] if f["detector"] == "reaction"
                and f["unit"] != "window:H01/W08"]   # the bursts' staff press at once too
    assert reach["unit"] == "window:H01/W03" and reach["evidence"]["delay_source"] == "terminal"
    # ... and only by it: the same cases with the hall's delay alone do not show it
    blind = store.query(lambda s: integrity.cases(s, period))
    for c in blind:
        c["press_delay"] = None
    assert ("reaction", "window:H01/W03") not in {
        (f["detector"], f["unit"]) for f in rules.findings(blind, T)}
    # the delay travelled hall -> store for the new terminals, and is absent for the old one
    delays = dict(store.query(lambda s: access.query(
        s, "SELECT terminal, COUNT(press_delay_ms) FROM ratings GROUP BY terminal", ())))
    old = terms[OLD_FIRMWARE].core.terminal
    assert delays[old] == 0 and all(n > 0 for t, n in delays.items() if t != old), delays
    assert ("skipped_prompts", "window:H01/W04") in found
    assert ("patterns", "window:H01/W05") in found
    assert ("patterns", "window:H01/W06") in found
    assert ("too_good", "window:H01/W07") in found
    assert ("bursts", "window:H01/W08") in found
    # two staff at W09, one of whom never asks: named, and the colleague who asks is not
    assert ("skipped_prompts", "staff:H01/S902") in found
    assert not {u for _, u in found} & {"staff:H01/S901"}, found
    # the command writes the internal report
    r = hcp("integrity", "report", "--db", store.db, "--period", period, "--out", tmp_path)
    assert "window:H01/W03" in r.output
    with open(tmp_path / ("%s-integrity.json" % period), encoding="utf-8") as f:
        assert json.load(f)["findings"]
