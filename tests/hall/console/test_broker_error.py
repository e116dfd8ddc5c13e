"""A daemon without its broker says why, on /api/v1/health and on the duty manager's page."""
import sys

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall.api_client import WindowApi
from haochaping.tools.sim import processes
from tests.conftest import wait_until

from .conftest import Client


def test_health_and_the_manager_page_say_why_the_broker_is_not_connected(hall, tmp_path):
    # if this fails, hall IT sees "broker": false with no reason, and the duty manager does not
    # learn that no rating reaches the daemon (mosquitto stopped, wrong [mqtt] port)
    d = processes.DaemonProcess(hall, log_path=str(tmp_path / "daemon.log"))
    d._spawn([sys.executable, "-m", "haochaping.tools.cli", "daemon", "run",
              "--config", hall.path])  # no broker fixture: nothing listens on [mqtt] port
    try:
        api = WindowApi(hall)
        health = {}

        def said():
            try:
                health.update(api.health())
            except HcpError:  # not listening yet
                return False
            return bool(health.get("broker_error"))
        wait_until(said, timeout=20, what="health to say why the broker is not connected")
        assert health["broker"] is False
        assert "cannot reach the broker at 127.0.0.1:%d" % hall.mqtt.port in health["broker_error"]
        host, _, port = hall.api.listen.rpartition(":")
        c = Client("http://%s:%s" % (host, port))
        assert c.sign_in("/hall", "M01").status == 200
        broker = c.get("/hall/state").json["broker"]
        assert broker["connected"] is False and "cannot reach the broker" in broker["error"]
    finally:
        d.kill()
