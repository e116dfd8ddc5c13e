"""A whole hall in one folder, for the demo, benchmarks and tests: hall.toml, the hall database
with terminals registered and paired, one device config per terminal, and the broker's config.

    folder/
      hall.toml  hall.sqlite  broker/{mosquitto.conf,passwd,acl,data/}  terminals/<T>.json
"""
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

from haochaping.daemon import config, db, registry
from haochaping.daemon.errors import HcpError

from . import broker


def create(folder, hall="H01", windows=("W01", "W02", "W03"), terminals_per_window=1,
           mqtt_port=None, api_port=None, timeout_s=120, extra_superusers=(), batch_max=1000):
    """Write everything; return the loaded config (with extra keys: folder, broker_conf)."""
    os.makedirs(os.path.join(folder, "terminals"), exist_ok=True)
    mqtt_port = mqtt_port or broker.free_port()
    api_port = api_port or broker.free_port()
    daemon_pw = secrets.token_urlsafe(18)
    api_token = secrets.token_urlsafe(24)
    users = {"hall-daemon": daemon_pw}
    for u in extra_superusers:
        users[u] = daemon_pw
    conf_path = os.path.join(folder, "hall.toml")
    with open(conf_path, "w") as f:
        f.write(HALL_TOML % dict(hall=hall, port=mqtt_port, pw=daemon_pw, api_port=api_port,
                                 token=api_token, timeout=timeout_s, batch=batch_max))
    os.chmod(conf_path, 0o600)
    cfg = config.load(conf_path)
    conn = db.connect(cfg["hall"]["database"])
    n = 0
    for w in windows:
        for _ in range(terminals_per_window):
            n += 1
            term = "T%03d" % n
            key = registry.add_terminal(conn, term)
            registry.pair(conn, w, term)
            pw = secrets.token_urlsafe(18)
            users[term] = pw
            write_device(folder, hall, term, w, key, "127.0.0.1", mqtt_port, pw)
    conn.close()
    cfg["broker_conf"] = broker.write_config(os.path.join(folder, "broker"), mqtt_port, hall, users,
                                             extra_superusers=extra_superusers)
    cfg["folder"] = folder
    return cfg


def write_device(folder, hall, terminal, window, key, host, port, password):
    path = os.path.join(folder, "terminals", terminal + ".json")
    with open(path, "w") as f:
        json.dump({"hall": hall, "terminal": terminal, "window": window, "key": key.hex(),
                   "mqtt": {"host": host, "port": port, "username": terminal,
                            "password": password},
                   "board": "simulated"}, f, indent=1)
    os.chmod(path, 0o600)
    return path


def devices(folder):
    d = os.path.join(folder, "terminals")
    out = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                out.append(json.load(f))
    return out


HALL_TOML = """\
# hall daemon configuration (written by hcp)
[hall]
id = "%(hall)s"
database = "hall.sqlite"

[mqtt]
host = "127.0.0.1"
port = %(port)d
username = "hall-daemon"
password = "%(pw)s"

[sessions]
timeout_s = %(timeout)d

[ingest]
batch_max = %(batch)d

[api]
listen = "127.0.0.1:%(api_port)d"

[api.tokens]
window-system = "%(token)s"
"""


class DaemonProcess:
    """`hcp daemon run` as a real process of its own, so tests can SIGKILL it."""

    def __init__(self, cfg, log_path=None):
        self.cfg = cfg
        self.proc = None
        self.log_path = log_path or os.path.join(os.path.dirname(cfg["path"]), "daemon.log")

    def start(self, timeout=15):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "haochaping.tools.cli", "-v", "daemon", "run",
             "--config", self.cfg["path"]], stdout=log, stderr=log)
        log.close()
        api = WindowApi(self.cfg)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise HcpError("the daemon exited at start (code %s); see %s"
                               % (self.proc.returncode, self.log_path))
            try:
                if api.health().get("broker"):
                    return self
            except (OSError, HcpError):
                pass
            time.sleep(0.05)
        raise HcpError("the daemon did not come up within %s s; see %s" % (timeout, self.log_path))

    def terminate(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(timeout)
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class WindowApi:
    """Client of the daemon's window API (what a queue system does)."""

    def __init__(self, cfg, token=None):
        host, _, port = cfg["api"]["listen"].rpartition(":")
        self.base = "http://%s:%s/api/v1" % (host, port)
        tokens = cfg["api"]["tokens"]
        if token is None:
            if not tokens:
                raise HcpError("hall.toml has no [api.tokens]: the window API is switched off")
            token = next(iter(tokens.values()))
        self.token = token

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", e.reason)
            except ValueError:
                msg = e.reason
            raise HcpError("%s (HTTP %d)" % (msg, e.code)) from None
        except urllib.error.URLError as e:
            raise HcpError("cannot reach the hall daemon at %s: %s (is `hcp daemon run` running?)"
                           % (self.base, e.reason)) from None
        except OSError as e:  # connected, then the daemon went away (reset, timeout) mid-answer
            raise HcpError("the hall daemon at %s did not answer: %s (is `hcp daemon run`"
                           " running?)" % (self.base, e)) from None

    def health(self):
        return self._call("GET", "/health")

    def start(self, window, ticket, item="", staff=""):
        return self._call("POST", "/windows/%s/start" % window,
                          {"ticket": ticket, "item": item, "staff": staff})

    def finish(self, window):
        return self._call("POST", "/windows/%s/finish" % window, {})

    def state(self, window):
        return self._call("GET", "/windows/%s" % window)
