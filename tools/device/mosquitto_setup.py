"""A hall's mosquitto: its config, password file and ACL, and (for the demo, benchmarks and
tests) a broker process of our own on a free port.

The ACL gives each terminal (username = terminal id) only its own topics, and the daemon the
hall's whole tree. Settings that matter for "nothing lost":
- persistence on (saved every 60 s and at shutdown): retained prompts and queued ratings survive
  a restart; what a crash loses since the last save, the terminals send again from their journal;
- max_inflight_messages 1000: the daemon acks after a group commit, so it must be allowed to
  hold many unacknowledged messages at once (the default of 20 would cap each batch at 20);
- max_queued_messages / max_queued_bytes: ratings queued for the daemon while it is down are
  kept, up to a bound (LIMITS below says which and why).
Settings that keep one terminal's credentials (they sit on a board in the public hall) from
harming the rest of the hall:
- use_username_as_clientid: a client's id IS its broker user, so no one can connect under the
  daemon's id (or another terminal's) and knock it off or wipe its persistent session;
- max_packet_size and max_queued_bytes: no message of a megabyte, and no flood, can fill the
  broker's memory or the hall's disk (NOT_SET says why memory_limit and others are not used).
"""
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from haochaping.daemon.errors import HcpError
from haochaping.protocol import topics


def mosquitto_binary() -> str:
    for c in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if c and os.path.exists(c):
            return c
    raise HcpError("mosquitto is not installed: `apt-get install mosquitto` (Debian/Ubuntu)")


def acl_text(hall: str, daemon_user: str, extra_superusers: Iterable[str] = ()) -> str:
    lines = ["# hcp: terminals see only their own topics; the daemon sees the hall's tree",
             "user %s" % daemon_user, "topic readwrite %s/%s/#" % (topics.PREFIX, hall)]
    for u in extra_superusers:
        lines += ["", "user %s" % u, "topic readwrite %s/%s/#" % (topics.PREFIX, hall)]
    lines += [""]
    for kind, access in ((topics.RATING, "write"), (topics.STATUS, "write"), (topics.ACK, "read"),
                         (topics.SESSION, "read"), (topics.CONFIG, "read"),
                         (topics.UPDATE, "read"), (topics.FETCH, "write"),
                         (topics.CHUNK, "read")):
        lines.append("pattern %s %s/%s/%%u/%s" % (access, topics.PREFIX, hall, kind))
    return "\n".join(lines) + "\n"


CLIENT_ID_NOTE = (
    "A client's id is its broker user name, whatever id it sends. The daemon's persistent "
    "session is therefore named after its user (hall.toml [mqtt] username); hall.toml's [mqtt] "
    "client_id no longer matters to this broker. A terminal's is its terminal id. So whoever "
    "has a terminal's password (it sits on a board in the public hall) can only ever be that "
    "terminal: not the daemon (knocking it off and wiping the ratings queued for it) nor "
    "another terminal. One connection per user: a second login with the same user replaces "
    "the first.")

_MB = 1024 * 1024
# (option, value, why): bounds that keep one terminal's credentials from filling the broker's
# memory and the hall's disk, each chosen so that the hall's own traffic never meets it.
# Written into mosquitto.conf with their reasons.
LIMITS: tuple[tuple[str, int, str], ...] = (
    ("max_packet_size", 64 * 1024,
     "The largest MQTT packet anyone may send, in bytes: a bigger one disconnects its sender "
     "before the broker reads it into memory. Every message of the protocol is at most 512 "
     "bytes (protocol/messages.py refuses more); the largest packet in real use is the "
     "daemon's ack, about 7 bytes per rating acked at once (at most [ingest] batch_max, 1000 by "
     "default: about 7 KB). 64 KiB leaves room for both; a megabyte is cut off at once."),
    ("max_inflight_messages", 1000,
     "The daemon acks after a group commit, so it must be allowed to hold many unacknowledged "
     "messages at once (the default of 20 would cap each commit at 20)."),
    ("max_queued_messages", 1000000,
     "Messages kept per client beyond those in flight, while it is offline or behind: ratings "
     "queued for the daemon while it is down are kept, up to a million. (Each terminal's journal "
     "keeps its unacked ratings, about 500 at its default size, and sends them again until the "
     "daemon acks: a full queue is mostly resends, and what it drops is still on the "
     "terminals.) When full, "
     "the broker drops new messages for that client and logs 'Outgoing messages are being "
     "dropped'. Measured on mosquitto "
     "2.0.11: 100,000 queued ratings take 53 MB of broker memory and 28 MB in "
     "data/mosquitto.db; a full queue ten times that."),
    ("max_queued_bytes", 256 * _MB,
     "The same bound in payload bytes, so that a flood of large messages (a terminal's "
     "password, the daemon down) stops where a full queue of real ratings would: a million "
     "ratings of about 200 bytes fit, and a flood of 64 KiB junk stops at 256 MiB. Both bounds "
     "are per client; only the daemon has a real backlog (a terminal's own queue holds its "
     "acks and prompts)."),
)
# Not set, on purpose (say why here, so that nobody adds them back):
NOT_SET = (
    "memory_limit: once reached, mosquitto 2.0 refuses the daemon the memory to receive its "
    "queue (disconnected due to out of memory) and then exits; the bounds above already cap "
    "what any one client can hold. max_inflight_bytes: in mosquitto 2.0.11 it did not bound "
    "what a client holds in flight (199 messages of 60 KB reached an unacking daemon with a "
    "1 MB setting); max_queued_bytes does. persistent_client_expiration: mosquitto 2.0 never "
    "expires a session loaded from data/mosquitto.db, so it would not clear an abandoned one.")


def _comment(text: str, width: int = 96) -> list[str]:
    lines, line = [], "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "#"
        line += " " + word
    return lines + [line]


class Listener(NamedTuple):
    """One port mosquitto listens on; tls: {cafile, certfile, keyfile} (PEM files) or None."""
    port: int
    address: str
    tls: Mapping[str, str | None] | None = None


TLS_NOTE = ("TLS 1.2 at least (mosquitto 2.0 allows 1.3 and 1.2 by default; said here so that "
            "nobody lowers it). Not tlsv1.3: MicroPython's mbedtls (the unix port, and ESP-IDF's "
            "by default) speaks 1.2 only, and the terminals would be refused. The terminals "
            "check this certificate against the hall CA.")


def _listener_lines(listener: Listener) -> list[str]:
    lines = ["listener %d %s" % (listener.port, listener.address)]
    for k in ("cafile", "certfile", "keyfile"):
        pem = listener.tls.get(k) if listener.tls else None
        if pem:
            lines.append("%s %s" % (k, os.path.abspath(pem)))
    if listener.tls and listener.tls.get("certfile"):
        lines += _comment(TLS_NOTE) + ["tls_version tlsv1.2"]
    return lines


def write_config(folder: str, port: int, hall: str, users: Mapping[str, str],
                 daemon_user: str = "hall-daemon", extra_superusers: Iterable[str] = (),
                 listen: str = "127.0.0.1", tls: Mapping[str, str | None] | None = None,
                 run_as: str | None = None, keep_users: bool = False,
                 listeners: Sequence[Listener] = ()) -> str:
    """Write mosquitto.conf, passwd (hashed) and acl into folder; return the conf path.
    users: {username: password}, including the daemon's. keep_users: keep the users already in
    the folder's passwd (hall IT re-running `hcp broker config`); tls: {cafile, certfile,
    keyfile}, each a PEM file or None. listeners: instead of the one (port, listen, tls), these
    (`hcp broker config --tls`: TLS for the hall, plain on localhost for the daemon)."""
    extra_superusers = tuple(extra_superusers)
    for u in (daemon_user, *extra_superusers):
        _check_user(u, "-")
    folder = os.path.abspath(folder)  # mosquitto may be started from anywhere
    os.makedirs(folder, exist_ok=True)
    passwd = os.path.join(folder, PASSWD)
    entries = read_passwd(passwd) if keep_users else {}
    if keep_users and os.path.exists(os.path.join(folder, ACL)):
        terminals = set(entries) - set(superusers(folder))
        for u in (daemon_user, *extra_superusers):
            if u in terminals:
                raise HcpError("broker user %s is a terminal's: the daemon needs a user of its own"
                               " ([mqtt] username in hall.toml)" % u)
    entries.update(_hash_users(folder, users))
    _write_passwd(passwd, entries)
    acl = os.path.join(folder, ACL)
    with open(acl, "w") as f:
        f.write(acl_text(hall, daemon_user, extra_superusers))
    data = os.path.join(folder, "data")
    os.makedirs(data, exist_ok=True)
    conf = os.path.join(folder, CONF)
    listener = [ln for lst in (listeners or [Listener(port, listen, tls)])
                for ln in _listener_lines(lst) + [""]]
    with open(conf, "w") as f:
        f.write("\n".join([
            "# written by hcp: one hall's broker. Reload after changes (kill -HUP $(cat %s));"
            % os.path.join(folder, PID),
            "# the listener lines and use_username_as_clientid are read at start only: restart.",
            ""] + listener + _comment(CLIENT_ID_NOTE) + ["use_username_as_clientid true", "",
            # run as whoever starts it (as root, mosquitto would switch to its own user and
            # could no longer read these files)
            "user %s" % (run_as or pwd.getpwuid(os.getuid()).pw_name),
            "pid_file %s" % os.path.join(folder, PID),
            "allow_anonymous false",
            "password_file %s" % passwd,
            "acl_file %s" % acl,
            "persistence true",
            "persistence_location %s/" % data,
            "autosave_interval 60",
            "set_tcp_nodelay true",  # no Nagle delay on acks and prompts (latency)
            ""] + [ln for option, value, why in LIMITS
                   for ln in _comment(why) + ["%s %d" % (option, value), ""]]
            + _comment("Not set: " + NOT_SET) + ["",
            "log_dest file %s" % os.path.join(folder, "mosquitto.log"),
            "log_dest stderr",  # and to whoever started it: the journal, under systemd
            "log_type error", "log_type warning", "log_type notice",
            ""]))
    give_to(run_as, [folder, passwd, acl, data])
    return conf


# ------------------------------------------------------------------ users of a running hall
PASSWD, ACL, CONF, PID = "passwd", "acl", "mosquitto.conf", "mosquitto.pid"


def _check_user(user: str, password: str) -> None:
    if (not user or ":" in user or any(c.isspace() for c in user) or "\n" in password
            or not password):
        raise HcpError("broker user %r: a name and a password, no ':', spaces or newlines" % user)


def _hash_users(folder: str, users: Mapping[str, str]) -> dict[str, str]:
    """{user: password} -> {user: hashed line}. mosquitto_passwd hashes a 0600 file of ours, so
    that no password is ever on a command line (where `ps` would show it)."""
    if not users:
        return {}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".passwd-")
    try:
        with os.fdopen(fd, "w") as f:
            for u, p in users.items():
                _check_user(u, p)
                f.write("%s:%s\n" % (u, p))
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        r = subprocess.run([tool, "-U", tmp], capture_output=True, text=True)
        if r.returncode:
            raise HcpError("mosquitto_passwd failed: %s" % r.stderr.strip())
        return read_passwd(tmp)
    finally:
        os.unlink(tmp)


def read_passwd(path: str) -> dict[str, str]:
    """{user: hashed line} of a mosquitto password file ({} if there is none)."""
    try:
        with open(path) as f:
            lines = [ln.rstrip("\n") for ln in f if ":" in ln]
    except FileNotFoundError:
        return {}
    return {ln.split(":", 1)[0]: ln for ln in lines}


def _write_passwd(path: str, entries: Mapping[str, str]) -> None:
    """Replace the password file atomically, keeping its owner (mosquitto must read it after a
    reload when hall IT edits it as root)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".passwd-")
    with os.fdopen(fd, "w") as f:
        f.write("".join(line + "\n" for line in entries.values()))
        f.flush()
        os.fsync(f.fileno())
    try:
        st = os.stat(path)
        os.chown(tmp, st.st_uid, st.st_gid)
    except (FileNotFoundError, PermissionError):
        pass
    os.replace(tmp, path)


def give_to(user: str | None, paths: Iterable[str]) -> None:
    """As root, hand the broker's files to the user mosquitto runs as."""
    if not user or os.getuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for p in paths:
        os.chown(p, pw.pw_uid, pw.pw_gid)


def new_password_file(folder: str, user: str) -> tuple[str, str]:
    """A new random password for broker user `user`, also written to <folder>/<user>.password
    (mode 600; never printed) for hall IT to copy into hall.toml. Return (password, that file)."""
    password = secrets.token_urlsafe(18)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, user + ".password")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password, path


def require_folder(folder: str) -> None:
    if not os.path.exists(os.path.join(folder, CONF)):
        raise HcpError("no broker config in %s: write one with `hcp broker config --out %s`"
                       % (folder, folder))


def superusers(folder: str) -> list[str]:
    """The users the folder's ACL gives the hall's whole tree: the daemon's (and, in the demo
    and benchmarks, the harness's)."""
    try:
        with open(os.path.join(folder, ACL)) as f:
            return [ln.split(None, 1)[1].strip() for ln in f if ln.startswith("user ")]
    except FileNotFoundError:
        return []


def set_users(folder: str, users: Mapping[str, str]) -> None:
    """Add or change terminals' users ({terminal id: password}) in a hall's broker folder
    (reload to apply). The daemon's user is refused: a terminal named like it would get the
    daemon's rights (and its password would be on a board in the public hall); `hcp broker
    config` sets the daemon's."""
    require_folder(folder)
    taken = sorted(set(users) & set(superusers(folder)))
    if taken:
        raise HcpError("broker user %s is the daemon's (it reads and writes the whole hall): a "
                       "terminal cannot have that name" % ", ".join(taken))
    path = os.path.join(folder, PASSWD)
    entries = read_passwd(path)
    entries.update(_hash_users(folder, users))
    _write_passwd(path, entries)


def remove_users(folder: str, names: Iterable[str]) -> list[str]:
    """Remove users from the password file; return those that were there (reload to apply)."""
    require_folder(folder)
    path = os.path.join(folder, PASSWD)
    entries = read_passwd(path)
    gone = [n for n in names if entries.pop(n, None) is not None]
    if gone:
        _write_passwd(path, entries)
    return gone


# what a SIGHUP does not apply (mosquitto.conf(5): "Not reloaded on reload signal")
START_ONLY = ("listener", "cafile", "certfile", "keyfile", "tls_version",
              "use_username_as_clientid", "user", "pid_file")


def read_conf(folder: str) -> str:
    """The folder's mosquitto.conf as it is now ("" when there is none)."""
    try:
        with open(os.path.join(folder, CONF)) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def start_only_changes(old: str, new: str) -> list[str]:
    """The lines a reload would not apply that differ between two configs (new ones first, then
    "no longer: <line>"): a running broker needs a restart for them. [] without an old one."""
    if not old:
        return []

    def pick(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.split(" ", 1)[0] in START_ONLY]
    before, after = pick(old), pick(new)
    return ([ln for ln in after if ln not in before]
            + ["no longer: " + ln for ln in before if ln not in after])


def tls_port(folder: str) -> int | None:
    """The port of the folder's TLS listener (one with a certfile), or None."""
    port = None
    for ln in read_conf(folder).splitlines():
        words = ln.split()
        if words[:1] == ["listener"] and len(words) > 1 and words[1].isdigit():
            port = int(words[1])
        elif words[:1] == ["certfile"] and port is not None:
            return port
    return None


def ties_client_ids_anew(old: str, new: str) -> bool:
    """True when `new` starts tying client ids to user names and `old` (a config in use) did
    not: the daemon's session on the broker gets a new name, and the old one is left behind."""
    def tied(text: str) -> bool:
        return "use_username_as_clientid true" in text.splitlines()
    return bool(old) and tied(new) and not tied(old)


def reload(folder: str) -> int | None:
    """SIGHUP the broker whose pid file is in folder: it re-reads passwords and ACL, and drops
    what they no longer allow. Return the pid, or None when no broker of this folder runs."""
    try:
        with open(os.path.join(folder, PID)) as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None
    except PermissionError:
        raise HcpError("not allowed to signal the broker (pid %d): run as its user or root"
                       % pid) from None
    return pid
