"""The terminal's press delay (第十一条) from the hall's database to the store's: forwarded when
a rating has one, left out of a batch when none has (an older store still takes it), bounded by
the field rule at the store, on both backends."""
import json
import sqlite3

import pytest

from haochaping.daemon import batches
from haochaping.daemon.hall import db, forward, settings
from haochaping.daemon.store import access, backends
from haochaping.protocol import fields

SECTION = settings.ForwardSection(region="530102", department="D1")


def _hall(tmp_path, delays):
    path = str(tmp_path / "hall.sqlite")
    db.connect(path).close()
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("INSERT INTO transactions (window, ticket, started_at, finished_at)"
              " VALUES ('W01', 'A1', 1790000000, 1790000060)")
    for seq, d in enumerate(delays, 1):
        c.execute("INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at,"
                  " outcome, transaction_id, press_delay_ms) VALUES ('T001', ?, 1, 't',"
                  " 1790000065, 1790000068, ?, 1, ?)",
                  (seq, "counted" if seq == 1 else "duplicate", d))
    c.close()
    conn = db.connect(path)
    n, _, first, last = forward.outbox_range(conn, 100)
    tables = forward.read_tables(conn, SECTION, first, last)
    conn.close()
    return batches.encode_columns("H01", "b1", tables)


def _stored(store_db, bodies):
    """Each batch body stored in turn (batch ids b1, b2, ...): the ratings' (seq, delay) and
    how many records each batch brought new."""
    s = backends.open_store(store_db)
    s.add_hall("H01")
    new = []
    for i, body in enumerate(bodies, 1):
        hall, batch, parsed = batches.parse_batch(body, "H01", "b%d" % i)
        new.append(s.store_batch(hall, batch, "sha%d" % i, parsed)["new"])
    got = access.query(s, "SELECT seq, press_delay_ms FROM ratings ORDER BY seq", ())
    s.close()
    return [tuple(r) for r in got], new


def test_the_press_delay_reaches_the_store_and_is_null_where_a_terminal_sent_none(
        tmp_path, store_db):
    # if this fails, the city's integrity report cannot use the terminal's own delay and
    # misses staff reaching over to press (docs/integrity.md)
    body = _hall(tmp_path, [4210, None])
    assert _stored(store_db, [body])[0] == [(1, 4210), (2, None)]


def test_a_batch_whose_ratings_were_stored_before_is_taken_again_with_some_delays_missing(
        tmp_path, store_db):
    # if this fails, a hall re-sending a batch after a crash (some of its ratings stored
    # before, from terminals old and new) gets a 500 from a PostgreSQL store on every try, and
    # the hall's delivery stops behind that batch
    body = _hall(tmp_path, [4210, None])
    got, new = _stored(store_db, [body, body.replace(b'"b1"', b'"b2"')])
    assert new[1] == 0 and got == [(1, 4210), (2, None)]


def test_a_batch_of_older_terminals_ratings_leaves_the_field_out(tmp_path):
    # if this fails, a hall upgraded before its store sends a field the old store refuses,
    # and every rating of the hall is set apart in the quarantine
    body = json.loads(_hall(tmp_path, [None, None]))
    assert "press_delay_ms" not in body["ratings"]


@pytest.mark.parametrize("value", [-1, fields.MAX_DELAY_MS + 1, 1.5, True, "900"])
def test_a_delay_out_of_bounds_is_refused_naming_the_record(value):
    # if this fails, a hall (or anyone with its key) can store a nonsense delay that skews
    # the reaction detector for the whole hall
    body = json.dumps({"v": 2, "hall": "H01", "batch": "b1", "ratings": {
        "terminal": ["T001"], "seq": [7], "level": [1], "outcome": ["counted"],
        "rated_at": [1790000065.0], "received_at": [1790000068.0],
        "press_delay_ms": [value]}}).encode()
    with pytest.raises(batches.BadBatch, match="H01:rating:T001:7: press_delay_ms"):
        batches.parse_batch(body, "H01", "b1")
