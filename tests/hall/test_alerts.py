"""Bad-review alerts reach the duty manager (MQTT topic and webhook) the moment they are stored."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from haochaping.tools.sim import processes
from tests.conftest import wait_until


def _listen(raw_client):
    got = []
    c = raw_client("observer")
    c.on_message = lambda cl, ud, m: got.append((m.retain, json.loads(m.payload)))
    c.subscribe("hcp/v1/H01/alerts", qos=1)
    return got


def test_a_very_dissatisfied_rating_raises_an_alert_with_window_staff_level_and_reason(
        api, terminals, raw_client):
    # if this fails, the duty manager learns of a 非常不满意 only from next quarter's report
    got = _listen(raw_client)
    t = terminals()["T001"]
    api.start("W01", "A001", staff="S0101")
    api.finish("W01")
    t.wait_session()
    seq = t.press(5)
    t.reason(seq, "attitude")
    wait_until(lambda: len(got) == 2, what="the alert and its reason")
    (r1, a), (r2, b) = got
    assert not r1 and not r2  # not retained: an old alert must not greet the next manager
    assert (a["kind"], a["window"], a["staff"], a["level"], a["level_name"], a["outcome"]) == \
        ("bad-review", "W01", "S0101", 5, "非常不满意", "counted")
    assert (b["kind"], b["seq"], b["reason_name"]) == ("bad-review-reason", seq, "服务态度")


def test_a_good_rating_raises_no_alert(api, terminals, raw_client):
    got = _listen(raw_client)
    t = terminals()["T001"]
    t.press(1)
    t.press(4)  # the bad one after it is the only alert
    wait_until(lambda: t.backlog() == 0 and len(got) == 1, what="one alert")
    assert got[0][1]["level"] == 4 and got[0][1]["outcome"] == "unsolicited"


class _Hook(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.headers.get("Authorization"), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_the_webhook_gets_the_alert_and_a_dead_webhook_does_not_stop_ratings(
        hall, broker, terminals, hall_db):
    # if this fails, a hall that uses a webhook (SMS gateway, IM bot) never hears of bad reviews,
    # or a broken gateway holds up every rating in the hall
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with open(hall.path, "a") as f:
        f.write('\n[alerts]\nwebhook = "http://127.0.0.1:%d/alert"\n'
                'webhook_token = "t0k3n-for-the-hook"\n' % srv.server_address[1])
    from haochaping.daemon.hall import settings
    cfg = settings.load(hall.path)
    d = processes.DaemonProcess(cfg).start()
    try:
        t = terminals()["T001"]
        t.press(4)
        wait_until(lambda: len(_Hook.received) == 1, what="the webhook call")
        auth, alert = _Hook.received[0]
        assert auth == "Bearer t0k3n-for-the-hook" and alert["level"] == 4
        srv.shutdown()
        srv.server_close()
        for _ in range(5):
            t.press(5)
        wait_until(lambda: t.backlog() == 0, what="ratings acked while the webhook is down")
        assert hall_db("SELECT COUNT(*) FROM ratings") == [(6,)]
    finally:
        d.kill()
