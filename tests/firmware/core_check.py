# The firmware core's behaviour, in the common subset: this one file runs under CPython (imported
# by test_core.py) and under real MicroPython (as a script, with a scratch folder as argument).
# Each check names what a citizen or hall IT would see go wrong if it failed.
# Prints one line per failure, then "core ok N" or "core FAILED N".
import binascii
import os

from haochaping.firmware import journal, statemachine
from haochaping.firmware.clock import ticks_add
from haochaping.firmware.statemachine import CHOSEN, FULL, IDLE, PROMPT, REASON, THANKS
from haochaping.protocol import messages

TOK = "ab" * 16
TOK2 = "cd" * 16
KEY = b"0123456789abcdef0123456789abcdef"


def _rm(path):
    for p in (path, path + ".new"):
        try:
            os.remove(p)
        except OSError:
            pass


class Store:
    """Stands in for the app: stores into a real journal, remembers what it confirmed."""

    def __init__(self, j):
        self.j = j
        self.ratings = []
        self.delays = []   # the press delay of each rating in self.ratings (ms, or None)
        self.reasons = []

    def rating(self, level, token, delay=None):
        try:
            seq = self.j.add_rating(level, token, 1000, delay)
        except journal.Full:
            return None
        self.ratings.append((seq, level, token))
        self.delays.append(delay)
        return seq

    def reason(self, ref, reason):
        seq = self.j.add_reason(ref, reason, 1000)
        self.reasons.append((seq, ref, reason))
        return seq


def _panel(d, name):
    path = d + "/" + name
    _rm(path)
    st = Store(journal.Journal(path))
    return statemachine.Panel(st), st


def _run(p, script):
    """script: list of (ms, event, arg). Ticks every 100 ms in between."""
    t = 0
    for at, ev, arg in script:
        while t < at:
            t += 100
            p.tick(t)
        if ev == "press":
            p.press(arg, t)
        elif ev == "session":
            p.session(arg, "W1", "S1", t)
        elif ev == "close":
            p.close(t)
    return t


# ------------------------------------------------------------------ state machine


def check_keys_light_when_a_session_arrives_and_go_dark_when_it_closes(d):
    p, st = _panel(d, "j1")
    if p.mode != IDLE:
        return "terminal not dark at boot"
    p.session(TOK, "W1", "S1", 0)
    if p.mode != PROMPT:
        return "keys did not light for a session"
    p.close(100)
    if p.mode != IDLE or st.ratings:
        return "keys stayed lit after the prompt closed"


def check_a_press_is_stored_only_after_the_3s_correction_window_then_thanks(d):
    p, st = _panel(d, "j2")
    _run(p, [(0, "session", TOK), (1000, "press", 2), (3900, None, None)])
    if st.ratings or p.mode != CHOSEN:
        return "rating committed before the 3 s correction window ended"
    _run(p, [(4100, None, None)])
    if st.ratings != [(1, 2, TOK)] or p.mode != THANKS:
        return "rating not stored then thanked after 3 s: %r" % (st.ratings,)


def check_the_citizen_can_correct_the_choice_within_3s(d):
    p, st = _panel(d, "j3")
    _run(p, [(0, "session", TOK), (1000, "press", 1), (2500, "press", 3), (5000, None, None)])
    if st.ratings != [(1, 3, TOK)]:
        return "corrected choice not the one stored: %r" % (st.ratings,)


def check_bounce_and_mashing_give_one_rating(d):
    p, st = _panel(d, "j4")
    script = [(0, "session", TOK)]
    for i in range(200):  # a child mashing keys every 50-100 ms for 15 s
        script.append((1000 + i * 75, "press", 1 + (i * 7) % 3))
    _run(p, script + [(30000, None, None)])
    if len(st.ratings) != 1:
        return "mashing gave %d ratings" % len(st.ratings)
    if p.mode != IDLE:
        return "terminal did not go dark after the one rating"


def check_one_rating_per_session_even_if_the_session_is_redelivered(d):
    p, st = _panel(d, "j5")
    _run(p, [(0, "session", TOK), (500, "press", 1), (10000, "session", TOK), (10100, None, None)])
    if p.mode != IDLE:
        return "keys relit for a session already rated (retained message redelivered)"
    _run(p, [(12000, "session", TOK2), (12500, "press", 2), (20000, None, None)])
    if [r[2] for r in st.ratings] != [TOK, TOK2]:
        return "next session not rated normally: %r" % (st.ratings,)
    # after a reboot the journal remembers the last rated token
    j = journal.Journal(d + "/j5")
    p2 = statemachine.Panel(Store(j), j.last_token)
    p2.session(TOK2, "W1", "S1", 0)
    if p2.mode != IDLE:
        return "keys relit after reboot for a session already rated"


def check_a_press_with_no_session_is_kept_with_an_empty_token(d):
    p, st = _panel(d, "j6")
    _run(p, [(100, "press", 4), (5000, None, None)])
    if st.ratings != [(1, 4, "")]:
        return "unsolicited press not stored with token '': %r" % (st.ratings,)


def check_a_bad_review_is_stored_before_the_reason_is_asked(d):
    p, st = _panel(d, "j7")
    _run(p, [(0, "session", TOK), (100, "press", 5), (3200, None, None)])
    if p.mode != REASON or st.ratings != [(1, 5, TOK)]:
        return "bad review not stored before asking the reason"
    _run(p, [(3300, "press", 3)])
    if st.reasons:
        return "a press right after the rating (bounce) was taken as a reason"
    _run(p, [(5000, "press", 3), (9000, None, None)])
    if st.reasons != [(2, 1, "attitude")]:
        return "reason not stored with its own seq and a reference: %r" % (st.reasons,)
    if p.mode != IDLE:
        return "terminal not idle after the reason"


def check_the_reason_is_optional_and_times_out_after_10s(d):
    p, st = _panel(d, "j8")
    _run(p, [(0, "session", TOK), (100, "press", 4), (3200, None, None)])
    _run(p, [(13100, None, None)])
    if p.mode == REASON:
        return "terminal still asks for a reason after 10 s"
    _run(p, [(20000, None, None)])
    if st.reasons or p.mode != IDLE:
        return "skipped reason stored something or did not return to idle"
    p2, st2 = _panel(d, "j8b")
    _run(p2, [(0, "session", TOK), (100, "press", 4), (4500, "press", 5), (9000, None, None)])
    if st2.reasons or p2.mode != IDLE:
        return "the skip key did not skip the reason"


def check_a_full_journal_shows_full_and_stores_nothing(d):
    path = d + "/j9"
    _rm(path)
    j = journal.Journal(path, max_bytes=600, compact_at=600)
    st = Store(j)
    p = statemachine.Panel(st)
    t = 0
    shown_full = False
    for _ in range(40):
        p.press(1, t + 100)
        for k in range(1, 80):
            p.tick(t + 100 + k * 100)
            if p.mode == FULL:
                shown_full = True
        t += 9000
    if not shown_full:
        return "a full journal never showed the full sign"
    j2 = journal.Journal(path, max_bytes=600, compact_at=600)
    if sorted(j2.pending) != [r[0] for r in st.ratings]:
        return "full journal lost or invented ratings"


def check_a_rating_carries_its_press_delay_since_the_prompt_lit(d):
    # if this fails, the hall cannot tell a staff member's instant press from a citizen's
    p, st = _panel(d, "jd1")
    _run(p, [(0, "session", TOK), (1000, "press", 2), (2500, "press", 3), (5000, None, None)])
    if st.ratings != [(1, 3, TOK)] or st.delays != [1000]:
        return "delay not from the prompt to the first press: %r %r" % (st.ratings, st.delays)
    # a prompt that arrives during the previous citizen's thank-you counts from when it lights
    _run(p, [(5100, "session", TOK2)])
    if p.mode != THANKS:
        return "the next prompt cut the thank-you short"
    _run(p, [(9000, "press", 1), (13000, None, None)])
    # stored at 1000 + CORRECT_MS, thanked for THANKS_MS: the keys light for TOK2 then
    lit = 1000 + statemachine.CORRECT_MS + statemachine.THANKS_MS
    if st.delays[1:] != [9000 - lit]:
        return "delay of a prompt lit after the thank-you: %r" % (st.delays,)
    # a press with no prompt has no delay
    _run(p, [(20000, "press", 4), (25000, None, None)])
    if st.delays[2:] != [None] or st.ratings[2][2] != "":
        return "an unsolicited press carries a delay: %r" % (st.delays,)


def check_the_press_delay_is_right_across_the_ticks_wrap(d):
    # if this fails, a terminal up for ~12 days (the ESP32's ticks wrap) reports absurd delays
    p, st = _panel(d, "jd2")
    lit = ticks_add(0, -700)            # just before the wrap (MicroPython); -700 on CPython
    p.session(TOK, "W1", "S1", lit)
    p.press(1, 500)
    p.tick(ticks_add(500, statemachine.CORRECT_MS))
    if st.delays != [1200]:
        return "delay across the wrap: %r" % (st.delays,)


def check_the_press_delay_survives_a_reboot_and_goes_out_signed(d):
    # if this fails, a rating resent after a power cut loses its delay, or an older journal
    # (firmware 0.2) no longer boots after the update
    path = d + "/jd3"
    _rm(path)
    with open(path, "wb") as f:   # a record written by firmware 0.2: five fields
        f.write(journal._line("r,1,2,%s,1764057600" % TOK))
    j = journal.Journal(path)
    j.add_rating(1, TOK2, 1764057610, 4210)
    j = journal.Journal(path)
    got = j.records()
    if got != [(1, "r", 2, TOK, 1764057600, None), (2, "r", 1, TOK2, 1764057610, 4210)]:
        return "journal records with and without a delay: %r" % (got,)
    seq, _, level, token, ts, delay = got[1]
    msg = messages.decode_uplink(messages.encode_rating(KEY, "T1", seq, level, token, ts, delay))
    if msg.get("delay_ms") != 4210 or not messages.verify_uplink(KEY, msg):
        return "the delay does not go out signed"


# ------------------------------------------------------------------ journal


def check_journal_keeps_seq_monotonic_across_reboots_and_compactions(d):
    path = d + "/k1"
    _rm(path)
    j = journal.Journal(path)
    a = j.add_rating(1, TOK, 5)
    b = j.add_rating(2, "", 6)
    j.ack([a, b])
    j.write_acks()  # the app writes acks from its key loop, a dozen at a time
    j.compact()
    j = journal.Journal(path)
    c = j.add_rating(3, "", 7)
    if (a, b, c) != (1, 2, 3):
        return "seq reused after compaction and reboot: %r" % ((a, b, c),)
    if j.pending != [3]:
        return "pending after reboot wrong: %r" % (j.pending,)
    _rm(path)  # the flash is wiped; provisioning sets the floor above what the daemon has
    j = journal.Journal(path, seq_floor=4)
    if j.add_rating(1, "", 8) != 4 or journal.Journal(path, seq_floor=2).next_seq != 5:
        return "seq floor not applied after a wipe, or lowered the seq"


def check_journal_recovers_dropping_only_a_torn_last_record(d):
    path = d + "/k2"
    _rm(path)
    j = journal.Journal(path)
    for lv in (1, 2, 3):
        j.add_rating(lv, TOK, 100)
    j.ack([2])
    j.write_acks()
    with open(path, "ab") as f:
        f.write(b"r,4,5,,100,dead")  # power cut in the middle of a record
    j = journal.Journal(path)
    if j.pending != [1, 3] or j.dropped != 1:
        return "torn record recovery wrong: pending %r dropped %d" % (j.pending, j.dropped)
    got = [(r[0], r[2]) for r in j.records()]
    if got != [(1, 1), (3, 3)]:
        return "records after recovery wrong: %r" % (got,)
    s = j.add_rating(4, "", 101)
    j = journal.Journal(path)
    if j.pending != [1, 3, s] or j.dropped:
        return "record appended after a torn tail was lost: %r" % (j.pending,)


def check_journal_loses_only_a_damaged_record_not_the_ones_after_it(d):
    path = d + "/k2b"
    _rm(path)
    j = journal.Journal(path)
    for lv in (1, 2, 3):
        j.add_rating(lv, TOK, 100)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    at = data.index(b"r,2,2,") + 4
    data[at] = ord("5")  # a flipped bit in the middle record: its CRC no longer matches
    with open(path, "wb") as f:
        f.write(data)
    j = journal.Journal(path)
    if j.pending != [1, 3] or j.dropped != 1:
        return "damaged middle record: pending %r dropped %d" % (j.pending, j.dropped)
    if j.add_rating(4, "", 1) != 4:
        return "seq reused after a damaged record"


def check_journal_finishes_or_discards_an_interrupted_compaction(d):
    path = d + "/k3"
    _rm(path)
    j = journal.Journal(path)
    j.add_rating(1, TOK, 1)
    j.add_rating(2, TOK, 1)
    with open(path + ".new", "wb") as f:
        f.write(b"h,3,")  # cut while writing the new file
    j = journal.Journal(path)
    if j.pending != [1, 2]:
        return "half-written compaction lost ratings"
    j.compact()
    os.rename(path, path + ".new")  # cut after removing the old file, before the rename (FAT)
    j = journal.Journal(path)
    if j.pending != [1, 2]:
        return "compaction interrupted before rename lost ratings"


def check_journal_records_come_back_oldest_first_with_reasons(d):
    path = d + "/k4"
    _rm(path)
    j = journal.Journal(path)
    r = j.add_rating(5, TOK, 10)
    n = j.add_reason(r, "efficiency", 11)
    j.add_rating(1, "", 12)
    got = list(j.records())
    if got != [(1, "r", 5, TOK, 10, None), (2, "n", 1, "efficiency", 11, None),
               (3, "r", 1, "", 12, None)]:
        return "records wrong: %r" % (got,)
    if [x[0] for x in j.records(after=n)] != [3]:
        return "records(after) wrong"
    p = messages.decode_uplink(messages.encode_reason(KEY, "T1", n, r, "efficiency", 11))
    if p["ref"] != r:
        return "reason message does not refer to the rating"


def check_journal_compacts_and_stays_bounded_over_many_ratings(d):
    path = d + "/k5"
    _rm(path)
    j = journal.Journal(path, max_bytes=4096, compact_at=1024)
    for i in range(300):
        s = j.add_rating(1 + i % 5, TOK, i)
        if i % 3 == 2:
            j.ack([s - 2, s - 1, s])
        j.compact_step()  # the key loop's app.tick() takes a step now and then
        if j.size > 4096 or os.stat(path)[6] != j.size:
            return "journal size not bounded or not tracked: %d" % j.size
    if j.compactions < 5 or j.pending:
        return "journal did not compact (%d) or kept acked ratings" % j.compactions
    j = journal.Journal(path, max_bytes=4096, compact_at=1024)
    if j.next_seq != 301:
        return "seq not continued after compactions: %d" % j.next_seq


def check_a_full_journal_refuses_rather_than_overwrites(d):
    path = d + "/k6"
    _rm(path)
    j = journal.Journal(path, max_bytes=1024, compact_at=512)
    seqs = []
    try:
        for i in range(100):
            seqs.append(j.add_rating(1, TOK, i))
    except journal.Full:
        pass
    else:
        return "journal never became full"
    if j.pending != seqs or [r[0] for r in j.records()] != seqs:
        return "full journal dropped undelivered ratings"
    j.ack(seqs[:3])
    s = j.add_rating(2, "", 1)
    if s != seqs[-1] + 1:
        return "after an ack there was no room again"


# ------------------------------------------------------------------ config and debounce

GOOD = {"wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
        "username": "T1", "password": "pw", "key": "6b" * 32,
        "board": {"name": "devkit", "chip": "esp32", "input": "buttons",
                  "keys": [32, 33, 25, 26, 27], "leds": [19, 18, 5, 17, 16], "buzzer": 23}}


def check_config_names_every_bad_field_not_just_the_first(d):
    from haochaping.firmware import config
    cfg = config.validate(GOOD)
    if cfg["port"] != 1883 or cfg["key"] != b"k" * 32:
        return "defaults or key decoding wrong"
    bad = {}
    for k in GOOD:
        bad[k] = GOOD[k]
    bad["hall"] = "H/1"
    bad["port"] = 0
    bad["key"] = "xyz"
    bad["colour"] = "red"
    bad["board"] = {"name": "b", "chip": "esp8266", "input": "buttons", "keys": [1, 2, 3, 4, 4]}
    try:
        config.validate(bad)
    except config.ConfigError as e:
        errs = e.args[0]
        want = ("hall:", "port:", "key:", "colour: unknown", "board.chip:",
                "board: GPIO 4 used twice")
        for w in want:
            if not [x for x in errs if x.startswith(w)]:
                return "bad field %r not named in %r" % (w, errs)
        return None
    return "bad config accepted"


def check_config_takes_the_hall_ca_and_refuses_a_bad_one(d):
    # a terminal provisioned for TLS must get the CA as bytes (ssl's cadata) and a name to check
    # the broker's certificate against; a mangled CA or a missing name is named, not guessed
    from haochaping.firmware import config
    der = b"\x30\x82\x01\x0a" + b"\x01" * 60
    good = {}
    for k in GOOD:
        good[k] = GOOD[k]
    good["tls_ca"] = binascii.b2a_base64(der).decode().strip()
    good["tls_name"] = "hall-srv"
    cfg = config.validate(good)
    if cfg["tls_ca"] != der or cfg["tls_name"] != "hall-srv":
        return "tls_ca not decoded: %r" % cfg["tls_ca"][:8]
    if config.validate(GOOD)["tls_ca"] is not None:
        return "a config without tls_ca has a CA"
    text = binascii.b2a_base64(b"not a certificate, only text that is long enough").decode()
    cases = ((("tls_ca", text.strip()), "tls_ca:"), (("tls_name", "10.0.0.2"), "tls_name:"),
             (("tls_name", None), "tls_name:"), (("tls_name", "bad name"), "tls_name:"))
    for (k, v), want in cases:
        bad = {}
        for x in good:
            bad[x] = good[x]
        bad[k] = v
        try:
            config.validate(bad)
            return "accepted %s=%r" % (k, v)
        except config.ConfigError as e:
            if not [x for x in e.args[0] if x.startswith(want)]:
                return "%s=%r not named: %r" % (k, v, e.args[0])
    name_only = {}
    for k in GOOD:
        name_only[k] = GOOD[k]
    name_only["tls_name"] = "hall-srv"
    try:
        config.validate(name_only)
        return "tls_name without tls_ca accepted"
    except config.ConfigError as e:
        if e.args[0] != ["tls_name: only with tls_ca"]:
            return "tls_name alone: %r" % e.args[0]
    return None


def check_debounce_turns_contact_bounce_and_a_held_key_into_one_press(d):
    db = statemachine.Debounce(3)
    up = [False] * 5
    k2 = [False, True, False, False, False]
    presses = 0
    # keys up at boot, bounce for 5 samples, then held for 50 samples, then bounce on release
    for s in [up, k2, up, k2, up, k2] + [k2] * 50 + [up, k2, up] + [up] * 10:
        m = db.feed(s)
        if m & ~2:
            return "a key that was not touched went down"
        presses += m >> 1 & 1
    if presses != 1:
        return "bounce and hold gave %d presses" % presses


# ------------------------------------------------------------------ the app's clock


class Clock:
    """A ticks clock stand-in: the tests move it by hand."""

    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def _app(d, name, start):
    from haochaping.firmware import app as app_mod
    _rm(d + "/" + name)
    cfg = {}
    for k in GOOD:
        cfg[k] = GOOD[k]
    cfg["journal"] = d + "/" + name
    from haochaping.firmware import config
    clock = Clock(start)
    return app_mod.App(config.validate(cfg), clock), clock


def _session(app, token, exp, now):
    app.on_message(app.t_session, messages.encode_session(b"k" * 32, "T1", token, "W1", "S1",
                                                          exp, now))


def check_a_prompt_goes_dark_when_its_session_expires_by_the_terminal_clock(d):
    app, clock = _app(d, "a1", 123456789)
    _session(app, TOK, 1764057600 + 90, 1764057600)
    if app.panel.mode != PROMPT:
        return "keys did not light for the session"
    clock.t += 89900
    app.tick()
    if app.panel.mode != PROMPT:
        return "the prompt closed before its expiry"
    clock.t += 100
    app.tick()
    if app.panel.mode != IDLE or app.panel.token:
        return "the prompt stayed open after its expiry"
    _session(app, TOK2, 1764057700, 1764057700)
    if app.panel.mode != IDLE:
        return "keys lit for a session that had already expired"


def check_a_prompt_open_for_days_closes_after_one_day_on_the_terminal(d):
    # a deadline beyond a day would not fit a ticks interval on the ESP32
    app, clock = _app(d, "a2", 0)
    _session(app, TOK, 1764057600 + 10 * 86400, 1764057600)
    for _ in range(23):
        clock.t += 3600000
        app.tick()
    if app.panel.mode != PROMPT:
        return "the prompt closed before a day"
    clock.t += 3600000
    app.tick()
    if app.panel.mode != IDLE:
        return "the prompt stayed open over a day"


def check_rating_time_follows_the_daemon_clock_for_days_without_messages(d):
    app, clock = _app(d, "a3", 987654)
    app.press(1)
    clock.t += 3500
    app.tick()
    if app.journal.records()[-1][4] != 0:
        return "a rating before the daemon was heard from is not marked time unknown (0)"
    _session(app, TOK, 1764057600 + 60, 1764057600)
    for _ in range(20 * 24 * 6):  # 20 days, the key loop ticking (every 10 min here)
        clock.t += 600000
        app.tick()
    clock.t += 1500
    app.press(2)
    clock.t += 3500
    app.tick()
    ts = app.journal.records()[-1][4]
    want = 1764057600 + 20 * 86400 + 5
    if ts != want:
        return "rating time %d after 20 days, want %d" % (ts, want)


def check_the_key_loop_tick_makes_no_heap_objects_with_a_prompt_open(d):
    # 100 ticks a second: a float or a big int per tick would be garbage all day (MicroPython
    # only: CPython has no gc.mem_alloc)
    import gc
    if not hasattr(gc, "mem_alloc"):
        return None
    app, clock = _app(d, "a4", 5000)
    _session(app, TOK, 1764057600 + 600, 1764057600)
    ticks = range(1000)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in ticks:
        clock.t += 10
        app.tick()
    used = gc.mem_alloc() - before
    gc.enable()
    if app.panel.mode != PROMPT:
        return "the prompt closed early"
    if used >= 1000:
        return "1000 ticks made %d bytes of heap objects" % used


def check(d):
    n = 0
    failures = []
    g = globals()
    for name in sorted(g):
        if name.startswith("check_"):
            n += 1
            err = g[name](d)
            if err:
                failures.append("%s: %s" % (name, err))
    return n, failures


if __name__ == "__main__":
    import sys
    n, failures = check(sys.argv[1])
    for f in failures:
        print(f)
    print(("core ok %d" if not failures else "core FAILED %d") % n)
