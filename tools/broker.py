"""A hall's mosquitto: its config, password file and ACL, and (for the demo, benchmarks and
tests) a broker process of our own on a free port.

The ACL gives each terminal (username = terminal id) only its own topics, and the daemon the
hall's whole tree. Settings that matter for "nothing lost":
- persistence on (saved every 60 s and at shutdown): retained prompts and queued ratings survive
  a restart; what a crash loses since the last save, the terminals send again from their journal;
- max_inflight_messages 1000: the daemon acks after a group commit, so it must be allowed to
  hold many unacknowledged messages at once (the default of 20 would cap each batch at 20);
- max_queued_messages 1000000: ratings queued for the daemon while it is down are kept.
"""
import os
import pwd
import shutil
import socket
import subprocess
import time

from haochaping.daemon.errors import HcpError
from haochaping.protocol import topics


def mosquitto_binary():
    for c in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if c and os.path.exists(c):
            return c
    raise HcpError("mosquitto is not installed: `apt-get install mosquitto` (Debian/Ubuntu)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def acl_text(hall, daemon_user, extra_superusers=()):
    lines = ["# hcp: terminals see only their own topics; the daemon sees the hall's tree",
             "user %s" % daemon_user, "topic readwrite %s/%s/#" % (topics.PREFIX, hall)]
    for u in extra_superusers:
        lines += ["", "user %s" % u, "topic readwrite %s/%s/#" % (topics.PREFIX, hall)]
    lines += [""]
    for kind, access in ((topics.RATING, "write"), (topics.STATUS, "write"), (topics.ACK, "read"),
                         (topics.SESSION, "read"), (topics.CONFIG, "read")):
        lines.append("pattern %s %s/%s/%%u/%s" % (access, topics.PREFIX, hall, kind))
    return "\n".join(lines) + "\n"


def write_config(folder, port, hall, users, daemon_user="hall-daemon", extra_superusers=()):
    """Write mosquitto.conf, passwd (hashed) and acl into folder; return the conf path.
    users: {username: password}, including the daemon's."""
    os.makedirs(folder, exist_ok=True)
    passwd = os.path.join(folder, "passwd")
    with open(passwd, "w") as f:
        for u, p in users.items():
            if ":" in u or "\n" in u + p:
                raise HcpError("broker user %r: no ':' or newlines" % u)
            f.write("%s:%s\n" % (u, p))
    os.chmod(passwd, 0o600)
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    r = subprocess.run([tool, "-U", passwd], capture_output=True, text=True)
    if r.returncode:
        raise HcpError("mosquitto_passwd failed: %s" % r.stderr.strip())
    acl = os.path.join(folder, "acl")
    with open(acl, "w") as f:
        f.write(acl_text(hall, daemon_user, extra_superusers))
    data = os.path.join(folder, "data")
    os.makedirs(data, exist_ok=True)
    conf = os.path.join(folder, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            "# written by hcp: one hall's broker",
            "listener %d 127.0.0.1" % port,
            # run as whoever starts it (as root, mosquitto would switch to its own user and
            # could no longer read these files)
            "user %s" % pwd.getpwuid(os.getuid()).pw_name,
            "allow_anonymous false",
            "password_file %s" % passwd,
            "acl_file %s" % acl,
            "persistence true",
            "persistence_location %s/" % data,
            "autosave_interval 60",
            "max_inflight_messages 1000",
            "max_queued_messages 1000000",
            "log_dest file %s" % os.path.join(folder, "mosquitto.log"),
            "log_type error", "log_type warning", "log_type notice",
            ""]))
    return conf


class Mosquitto:
    """A broker process of our own (demo, bench, tests). Stop, kill and restart it at will."""

    def __init__(self, conf, port):
        self.conf = conf
        self.port = port
        self.proc = None

    def start(self, timeout=10):
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise HcpError("mosquitto exited at start: %s" % self.proc.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise HcpError("mosquitto did not listen on port %d within %s s" % (self.port, timeout))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
