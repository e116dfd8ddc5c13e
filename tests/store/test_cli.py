"""hcp store and hcp forward from the command line: keys never printed, one-line errors,
what the municipal office browses (CSV/JSON)."""
import csv
import io
import json
import os
import stat

import pytest
from click.testing import CliRunner

from haochaping.daemon import batches
from haochaping.daemon.store import backends
from haochaping.tools.cli import _register, cli
from haochaping.tools.sim import hall_kit

from .conftest import BACKENDS, PG_ADMIN, encode_v1, serve_store

_register()


def _run(*args):
    r = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in r.output
    return r


def test_add_hall_writes_the_key_to_a_600_file_and_never_prints_it(store_db, tmp_path):
    # if this fails, a hall's signing key ends up in a terminal scrollback or a world-readable file
    out = str(tmp_path / "H02.key")
    r = _run("store", "add-hall", "--db", store_db, "--hall", "H02", "--name", "五华区",
             "--key-out", out)
    assert r.exit_code == 0, r.output
    key = batches.read_key_file(out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert key.hex() not in r.output
    s = backends.open_store(store_db)
    assert s.hall_key("H02") == key
    s.close()
    r = _run("store", "add-hall", "--db", store_db, "--hall", "H02",
             "--key-out", str(tmp_path / "x"))
    assert r.exit_code == 1 and "registered already" in r.output
    r = _run("store", "add-hall", "--db", store_db, "--hall", "H03", "--key-out", out)
    assert r.exit_code == 1 and "exists already" in r.output
    r = _run("store", "halls", "--db", store_db)
    assert "H02" in r.output and "五华区" in r.output and "never" in r.output


def test_ratings_come_out_as_csv_and_json_with_their_transaction(store_db, tmp_path):
    # if this fails, the municipal office cannot get a hall's ratings into a spreadsheet
    s = backends.open_store(store_db)
    s.add_hall("H01")
    recs = [{"type": "transaction", "id": "H01:tx:1", "tx": 1, "window": "W01", "ticket": "BJ-0001",
             "item": "530100-001", "staff": "S01", "started_at": 1793500000.0,
             "finished_at": 1793500060.0},
            {"type": "rating", "id": "H01:rating:T001:1", "terminal": "T001", "seq": 1, "level": 5,
             "outcome": "counted", "transaction": "H01:tx:1", "rated_at": 1793500070.0,
             "received_at": 1793500071.0},
            {"type": "reason", "id": "H01:reason:T001:2", "terminal": "T001", "seq": 2, "ref": 1,
             "reason": "服务态度", "rated_at": 1793500075.0}]
    body = encode_v1("H01", "b1", recs)
    hall, batch, parsed = batches.parse_batch(body, "H01", "b1")
    s.store_batch(hall, batch, "sha", parsed)
    s.close()
    r = _run("store", "ratings", "--db", store_db, "--hall", "H01", "--since", "2026-11-01")
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(io.StringIO(r.output)))
    assert ((row["ticket"], row["level"], row["reason"], row["channel"])
            == ("BJ-0001", "5", "服务态度", "PJQ"))
    assert row["rated_at"] == "2026-11-01 10:27:50"  # Asia/Shanghai
    r = _run("store", "ratings", "--db", store_db, "--hall", "H01", "--since", "2026-11-01",
             "--format", "json")
    assert json.loads(r.output.splitlines()[0])["staff"] == "S01"
    r = _run("store", "ratings", "--db", store_db, "--hall", "H01", "--since", "2026-11-02")
    assert r.output.count("\n") == 1  # the header only


def test_store_errors_are_one_line(tmp_path, certs):
    # if this fails, municipal IT meets a traceback instead of what to fix
    r = _run("store", "serve", "--db", str(tmp_path / "s.sqlite"), "--listen", "127.0.0.1:0")
    assert r.exit_code == 1 and "HTTPS needs --cert and --key" in r.output
    r = _run("store", "halls", "--db", str(tmp_path / "no" / "such" / "s.sqlite"))
    assert r.exit_code == 1 and "no folder" in r.output
    r = _run("store", "halls", "--db", "postgresql://postgres@127.0.0.1:1/nothing")
    assert r.exit_code == 1 and "cannot connect to PostgreSQL" in r.output


def test_the_serving_stores_start_line_is_a_message_not_a_warning(tmp_path, certs):
    # if this fails, municipal IT reads "WARNING" in the journal at every start of a store that
    # is fine, and learns to skip the store's warnings
    st = serve_store(str(tmp_path / "s.sqlite"), certs, tmp_path / "store")
    try:
        lines = [ln for ln in st.proc.log_text().splitlines() if "listening on" in ln]
    finally:
        st.proc.kill()
    assert lines and lines[0].startswith("store (sqlite) listening on https://127.0.0.1:"), lines
    assert not any("WARNING" in ln for ln in lines), lines


def test_serve_with_a_bad_certificate_says_so_before_creating_anything(tmp_path, certs):
    # if this fails, a typo in --cert or --key (or a key that is not the certificate's) is
    # found only after the database was created and the workers started, and the store dies
    # with a worker's traceback instead of saying which file to fix
    db = tmp_path / "s.sqlite"
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    r = _run("store", "serve", "--db", str(db), "--cert", str(bad), "--key", certs["key"],
             "--listen", "127.0.0.1:0")
    assert r.exit_code == 1 and "cannot load the certificate" in r.output
    r = _run("store", "serve", "--db", str(db), "--cert", certs["cert"], "--key", certs["ca"],
             "--listen", "127.0.0.1:0")
    assert r.exit_code == 1 and "cannot load the certificate" in r.output
    r = _run("store", "serve", "--db", str(db), "--cert", certs["cert"])
    assert r.exit_code == 1 and "HTTPS needs --cert and --key" in r.output
    assert not db.exists() and list(tmp_path.iterdir()) == [bad]


def test_forward_status_says_when_forwarding_is_off(tmp_path):
    # if this fails, hall IT cannot tell "not configured" from "working"
    cfg = hall_kit.create(str(tmp_path / "h"), windows=("W01",))
    r = _run("forward", "status", "--config", cfg.path)
    assert r.exit_code == 0
    assert "forwarding is off" in r.output and "backlog: none" in r.output
    r = _run("forward", "status", "--config", cfg.path, "--json")
    assert json.loads(r.output)["backlog"] == 0


def test_a_forward_section_with_mistakes_lists_every_one(tmp_path):
    # if this fails, hall IT fixes hall.toml one error per daemon restart
    cfg = hall_kit.create(str(tmp_path / "h"), windows=("W01",))
    with open(cfg.path, "a") as f:
        f.write('\n[forward]\nurl = "http://store"\nbatch_size = 0\nhall_id = "bad id"\n'
                'region = "5301020000000"\n')
    r = _run("forward", "status", "--config", cfg.path)
    assert r.exit_code == 1
    for part in ("[forward] url", "[forward] key_file", "[forward] batch_size", "[forward] hall_id",
                 "[forward] region"):
        assert part in r.output


def test_a_forwarder_with_a_missing_key_or_ca_file_says_which(tmp_path):
    # if this fails, `hcp daemon run` dies with a traceback when a [forward] file is missing
    import pytest

    from haochaping.daemon.errors import HcpError
    from haochaping.daemon.hall import settings
    from haochaping.daemon.hall.forward import Forwarder
    cfg = hall_kit.create(str(tmp_path / "h"), windows=("W01",))
    with open(cfg.path, "a") as f:
        f.write('\n[forward]\nurl = "https://127.0.0.1:9"\nkey_file = "H01.key"\nca = "ca.pem"\n')
    with pytest.raises(HcpError, match="key file .*H01.key not found"):
        Forwarder(settings.load(cfg.path))
    batches.write_key_file(str(tmp_path / "h" / "H01.key"), b"k" * 32)
    with pytest.raises(HcpError, match="cannot read the CA certificate .*ca.pem"):
        Forwarder(settings.load(cfg.path))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_forward_prints_both_rates_every_round_and_no_loss(backend, tmp_path):
    # if this fails, the forwarding figures in the README cannot be measured again (or the
    # benchmark itself loses or doubles records and nobody notices)
    r = CliRunner().invoke(cli, ["bench", "forward", "--records", "2000", "--batch-size", "500",
                                 "--repeat", "2", "--backend", backend, "--pg", PG_ADMIN,
                                 "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert doc["backend"] == backend and doc["records"] == 2000 and doc["batches"] == 4
    assert doc["lost"] == 0 and doc["duplicated"] == 0
    assert len(doc["rounds"]) == 2
    assert doc["raw_rows_per_s"] == max(x["raw_rows_per_s"] for x in doc["rounds"]) > 0
    assert doc["forward_rows_per_s"] == max(x["forward_rows_per_s"] for x in doc["rounds"]) > 0
    assert doc["ratio"] == round(doc["forward_rows_per_s"] / doc["raw_rows_per_s"], 3)
