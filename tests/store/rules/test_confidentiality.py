"""第六条: a real-name rater's identity is encrypted at rest and appears in no output, log,
export or report; only an authorised follow-up (`hcp cases follow-up --show-contact` with the
identity key) shows it, on the terminal, and never logs it."""
import glob
import os
import subprocess
import sys

from haochaping.daemon.store import cases
from tests.store.conftest import encode_v1

from .conftest import at, recent

NAME = "欧阳明珠"
PHONE = "13987654321"


def _hcp(*args):
    """`hcp -v …` as a real process (its log on stderr): (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "haochaping.tools.cli", "-v"]
                       + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def _batch(rater):
    now, old = at(recent()), at("2026-09-01 10:00")
    recs = []
    for n, (t, level, reason) in enumerate([(old, 5, "attitude"), (old, None, None),
                                            (now, 4, "efficiency"), (now, 1, None)], 1):
        recs.append({"type": "transaction", "id": "H01:tx:%d" % n, "tx": n, "window": "W01",
                     "ticket": "B%03d" % n, "staff": "S0101", "department": "D1",
                     "started_at": t - 60, "finished_at": t, "rater": rater})
        if level:
            recs.append({"type": "rating", "id": "H01:rating:T001:%d" % (10 * n),
                         "terminal": "T001", "seq": 10 * n, "level": level, "outcome": "counted",
                         "transaction": "H01:tx:%d" % n, "rated_at": t + 30,
                         "received_at": t + 30})
        if reason:
            recs.append({"type": "reason", "id": "H01:reason:T001:%d" % (10 * n + 1),
                         "terminal": "T001", "seq": 10 * n + 1, "ref": 10 * n,
                         "reason": reason, "rated_at": t + 35})
    return encode_v1("H01", "real-name-1", recs)


def test_art6_a_known_name_and_phone_appear_in_no_output_log_export_or_report(store, tmp_path):
    # if this fails, a citizen who rated under their real name is exposed in a log file, a
    # CSV export or a published report, without their consent (第六条)
    rater = {"consent": True, "identity": {"name": NAME, "phone": PHONE}}
    c = store.client()
    assert c.post_batch("real-name-1", _batch(rater))["status"] == "stored"
    c.close()
    db, out = store.db, tmp_path / "reports"
    bad_old, bad_new = cases.case_id("H01:rating:T001:10"), cases.case_id("H01:rating:T001:30")
    token = tmp_path / "H01.token"
    runs = [
        ("store", "run-defaults", "--db", db, "--json"),
        ("store", "halls", "--db", db),
        ("store", "ratings", "--db", db, "--hall", "H01", "--since", "2026-01-01"),
        ("store", "ratings", "--db", db, "--hall", "H01", "--since", "2026-01-01", "--format",
         "json"),
        ("cases", "list", "--db", db, "--json"),
        ("cases", "overdue", "--db", db),
        ("cases", "follow-up", "--db", db, bad_old, "--channel", "phone", "--feedback",
         "satisfied", "--note", "已电话回访"),
        ("cases", "close", "--db", db, bad_old, "--result", "已整改"),
        ("cases", "show", "--db", db, bad_old, "--json"),
        ("appeal", "add-unit", "--db", db, "--unit", "D1", "--token-out", token),
        ("appeal", "file", "--store", store.url, "--token-file", token, "--ca", store.ca,
         "--rating", "H01:rating:T001:30", "--reason", "误评"),
        ("appeal", "list", "--db", db, "--json"),
        ("rules", "explain", "--db", db, "--unit", "D1", "--period", "2026Q3", "--json"),
        ("rules", "explain", "--db", db, "--unit", "staff:H01/S0101", "--period", "2026Q4"),
        ("report", "quarterly", "--db", db, "--period", "2026Q3", "--out", out),
        ("report", "quarterly", "--db", db, "--period", "2026Q3", "--out", out, "--public"),
        ("report", "quarterly", "--db", db, "--period", "2026Q4", "--out", out),
        ("report", "quarterly", "--db", db, "--period", "2026Q4", "--out", out, "--public"),
    ]
    seen = []
    for args in runs:
        code, stdout, stderr = _hcp(*args)
        assert code in (0, 1) and "Traceback" not in stderr, (args, stderr)
        seen.append((" ".join(map(str, args[:2])), stdout + stderr))
    # the authorised follow-up: the contact on the terminal, nothing in the log
    code, stdout, stderr = _hcp("cases", "follow-up", "--db", db, bad_new, "--show-contact",
                                "--identity-key", store.identity_key)
    assert code == 0 and NAME in stdout and PHONE in stdout
    seen.append(("show-contact log", stderr))
    code, stdout, stderr = _hcp("cases", "follow-up", "--db", db, bad_new, "--show-contact")
    assert code == 2 and "--identity-key" in stdout + stderr
    # without the key file there is no way to the identity
    code, stdout, stderr = _hcp("cases", "follow-up", "--db", db, bad_new, "--show-contact",
                                "--identity-key", tmp_path / "H01.token")
    assert code == 1 and NAME not in stdout + stderr
    assert len(os.listdir(out)) == 4 * 8                  # 2 periods × 2 variants × 8 files
    for path in sorted(glob.glob(str(out / "*"))):
        with open(path, encoding="utf-8") as f:
            seen.append((os.path.basename(path), f.read()))
    store.proc.terminate()
    seen.append(("store log", store.proc.log_text()))
    for what, text in seen:
        assert NAME not in text and PHONE not in text, what
    # and at rest: no table of the database holds them in clear
    s = store.open()
    try:
        for table in ("transactions", "ratings", "reasons", "cases", "case_events", "appeals",
                      "batches"):
            rows = repr(s._query("SELECT * FROM %s" % table, ()))
            assert NAME not in rows and PHONE not in rows, table
        assert s.rater("H01:tx:1") == {"name": NAME, "phone": PHONE}   # the key opens it
    finally:
        s.close()
    if store.db.endswith(".sqlite"):
        for path in glob.glob(store.db + "*"):
            with open(path, "rb") as f:
                raw = f.read()
            assert NAME.encode() not in raw and PHONE.encode() not in raw, path
    real = [c for c in seen if c[0] == "cases list"][0][1]
    assert '"real_name": true' in real
