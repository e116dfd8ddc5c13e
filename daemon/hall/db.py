"""The hall's SQLite database: schema, versioned migrations, and connection settings.

WAL with synchronous=FULL: a commit is on disk when it returns, which is what an ack promises.
Open it with `sqlite-utils tables hall.sqlite --counts` or `datasette hall.sqlite`.
"""
import sqlite3

# Named migrations, applied once each, in this order; `schema_migrations` records which ran.
# To change the schema, APPEND a new (name, sql) entry; never edit one that has shipped.
MIGRATIONS: list[tuple[str, str]] = [
    ("0001-hall-core", """
    CREATE TABLE terminals (
        id TEXT PRIMARY KEY,
        key BLOB NOT NULL,                 -- HMAC key shared with the terminal
        added_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE pairings (                -- window <-> terminals; a window may have several
        terminal TEXT PRIMARY KEY REFERENCES terminals(id),
        window TEXT NOT NULL,
        paired_at REAL NOT NULL
    );
    CREATE INDEX pairings_window ON pairings(window);
    CREATE TABLE transactions (            -- 办件 served at a window
        id INTEGER PRIMARY KEY,
        window TEXT NOT NULL,
        ticket TEXT NOT NULL,
        item TEXT NOT NULL DEFAULT '',     -- 事项编码
        staff TEXT NOT NULL DEFAULT '',
        started_at REAL NOT NULL,
        finished_at REAL,
        token TEXT UNIQUE,                 -- the rating prompt's session token
        prompt_expires_at REAL,
        prompt_closed_at REAL,
        prompt_closed_by TEXT,             -- rated | next | timeout
        rating_id INTEGER                  -- the rating that counts (first one)
    );
    CREATE INDEX transactions_window ON transactions(window, id);
    CREATE INDEX transactions_open_prompts ON transactions(prompt_expires_at)
        WHERE token IS NOT NULL AND prompt_closed_at IS NULL;
    CREATE TABLE prompt_terminals (        -- which terminals were shown which prompt
        token TEXT NOT NULL,
        terminal TEXT NOT NULL,
        PRIMARY KEY (token, terminal)
    ) WITHOUT ROWID;
    CREATE TABLE ratings (
        id INTEGER PRIMARY KEY,
        terminal TEXT NOT NULL,
        seq INTEGER NOT NULL,              -- the terminal's journal sequence number
        level INTEGER NOT NULL,
        token TEXT NOT NULL,
        rated_at REAL NOT NULL,            -- press time (terminal clock, synced to the daemon)
        received_at REAL NOT NULL,
        outcome TEXT NOT NULL,             -- counted | duplicate | unsolicited | expired
        transaction_id INTEGER REFERENCES transactions(id),
        reason TEXT,                       -- bad-review reason, when the citizen gave one
        sig TEXT NOT NULL DEFAULT '',      -- the terminal's signature: tells a redelivery apart
        UNIQUE (terminal, seq)
    );
    CREATE TABLE reasons (
        terminal TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ref INTEGER NOT NULL,              -- seq of the rating it explains
        reason TEXT NOT NULL,
        rated_at REAL NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (terminal, seq)
    ) WITHOUT ROWID;
    CREATE TABLE rejected (                -- never silently dropped: kept with the reason
        id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        topic TEXT NOT NULL,
        terminal TEXT,
        reason TEXT NOT NULL,
        payload BLOB NOT NULL,
        payload_sha TEXT NOT NULL UNIQUE
    );
    CREATE TABLE terminal_status (
        terminal TEXT PRIMARY KEY,
        online INTEGER NOT NULL,
        firmware TEXT, board TEXT, heap INTEGER, backlog INTEGER, rssi INTEGER,
        last_seen REAL NOT NULL
    );
    CREATE TABLE audit (                   -- who changed what, when (pairing, sign-ins, prompts)
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''    -- JSON; never secrets or rater identity
    );
    """),
    ("0003-console-staff", """
    CREATE TABLE console_staff (           -- hall web console accounts (hcp staff)
        number TEXT PRIMARY KEY,           -- staff number (工号), also written on transactions
        name TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL CHECK (role IN ('staff', 'manager')),
        pin_hash TEXT NOT NULL,            -- scrypt$N$r$p$salt$hash, never the PIN
        added_at REAL NOT NULL,
        pin_changed_at REAL NOT NULL,      -- sessions signed in before this end
        disabled_at REAL                   -- set: cannot sign in, sessions end
    );
    """),
    ("0002-forward-outbox", """
    CREATE TABLE forward_outbox (          -- what the forwarder has yet to deliver, in commit order
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,                -- transaction | rating | reason
        ref INTEGER NOT NULL,              -- transactions.id | ratings.id | reasons.seq
        terminal TEXT,                     -- reasons only
        queued_at REAL NOT NULL
    );
    CREATE TABLE forward_batches (         -- every batch built, the delivery log; never deleted
        id TEXT PRIMARY KEY,               -- the batch id the store sees
        first_id INTEGER NOT NULL,         -- forward_outbox range it carries
        last_id INTEGER NOT NULL,
        records INTEGER NOT NULL,
        body BLOB,                         -- the exact bytes posted; dropped once delivered
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at REAL,
        last_status INTEGER,               -- HTTP status of the last answer, 0 for none
        last_error TEXT,                   -- in words; kept after a later success
        last_error_at REAL,
        delivered_at REAL                  -- the store said: durably committed
    );
    CREATE INDEX forward_batches_pending ON forward_batches(created_at) WHERE delivered_at IS NULL;
    INSERT INTO forward_outbox (kind, ref, terminal, queued_at)
        SELECT kind, ref, terminal, at FROM (
            SELECT 'transaction' AS kind, id AS ref, NULL AS terminal, finished_at AS at
              FROM transactions WHERE finished_at IS NOT NULL
            UNION ALL SELECT 'rating', id, NULL, received_at FROM ratings
            UNION ALL SELECT 'reason', seq, terminal, received_at FROM reasons)
        ORDER BY at;
    CREATE TRIGGER forward_transaction_finished AFTER UPDATE OF finished_at ON transactions
        WHEN OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL BEGIN
        INSERT INTO forward_outbox (kind, ref, queued_at)
            VALUES ('transaction', NEW.id, NEW.finished_at);
    END;
    CREATE TRIGGER forward_transaction_inserted AFTER INSERT ON transactions
        WHEN NEW.finished_at IS NOT NULL BEGIN
        INSERT INTO forward_outbox (kind, ref, queued_at)
            VALUES ('transaction', NEW.id, NEW.finished_at);
    END;
    CREATE TRIGGER forward_rating AFTER INSERT ON ratings BEGIN
        INSERT INTO forward_outbox (kind, ref, queued_at) VALUES ('rating', NEW.id, NEW.received_at);
    END;
    CREATE TRIGGER forward_reason AFTER INSERT ON reasons BEGIN
        INSERT INTO forward_outbox (kind, ref, terminal, queued_at)
            VALUES ('reason', NEW.seq, NEW.terminal, NEW.received_at);
    END;
    """),  # noqa: E501 (a shipped migration's text is never edited, not even re-wrapped)
    # errors: JSON list of the device config's bad fields, as the terminal's status named them
    ("0005-status-errors", """
    ALTER TABLE terminal_status ADD COLUMN errors TEXT
    """),
    # every refused message counted; its payload kept in `rejected` only for the first few a
    # minute (daemon/hall/ingest.py, reject), so that junk cannot fill the disk
    ("0006-rejected-counts", """
    CREATE TABLE rejected_counts (
        terminal TEXT PRIMARY KEY,         -- a registered terminal; '' for every message that
                                           -- names none (wrong topic, unknown or revoked id)
        total INTEGER NOT NULL,            -- messages refused, since the first
        dropped INTEGER NOT NULL,          -- of those, only counted (over the minute's limit)
        minute INTEGER NOT NULL,           -- the minute in_minute counts (Unix time // 60)
        in_minute INTEGER NOT NULL,        -- messages refused in that minute
        last_at REAL NOT NULL,
        last_reason TEXT NOT NULL
    ) WITHOUT ROWID
    """),
    # A batch the store refuses for its content (422) is split until the refused records are
    # alone; they are set apart here, for hall IT to fix and retry or to drop (daemon/hall/
    # forward.py, docs/store.md "A record the store refuses"). Nothing is dropped unasked.
    ("0007-forward-quarantine", """
    ALTER TABLE forward_batches ADD COLUMN refused_at REAL;  -- 422: its records went on split
    CREATE INDEX forward_batches_last ON forward_batches(last_id);
    CREATE TABLE forward_quarantine (      -- records the store refused, one row per record
        id INTEGER PRIMARY KEY,            -- what `hcp forward quarantine show|retry|drop` take
        record TEXT NOT NULL,              -- the record id the store sees (H01:tx:17)
        hall_table TEXT NOT NULL,          -- transactions | ratings | reasons
        ref INTEGER NOT NULL,              -- as forward_outbox.ref
        terminal TEXT,                     -- as forward_outbox.terminal (reasons only)
        queued_at REAL NOT NULL,           -- when it was first queued for the store
        batch TEXT NOT NULL,               -- the batch of this record alone that was refused
        status INTEGER NOT NULL,           -- the store's HTTP status (422)
        reason TEXT NOT NULL,              -- the store's reason, in words
        quarantined_at REAL NOT NULL,      -- when it was last refused
        attempts INTEGER NOT NULL DEFAULT 1,  -- times the store refused it alone
        state TEXT NOT NULL DEFAULT 'held'
            CHECK (state IN ('held', 'retried', 'delivered', 'dropped')),
        outbox_id INTEGER,                 -- its forward_outbox row while retried
        decided_at REAL,                   -- the last retry or drop: when, who, why
        decided_by TEXT,
        note TEXT
    );
    CREATE INDEX forward_quarantine_record ON forward_quarantine(hall_table, ref);
    CREATE INDEX forward_quarantine_retried ON forward_quarantine(outbox_id)
        WHERE state = 'retried';
    """),
    # the console's signed-in sessions (a daemon restart signs nobody out) and the duty
    # manager's acknowledgements of bad-review alerts (daemon/hall/console/, docs/console.md)
    ("0008-console-sessions", """
    CREATE TABLE console_sessions (        -- signed-in console sessions
        key TEXT PRIMARY KEY,              -- SHA-256 of the cookie's session id, never the id
        csrf TEXT NOT NULL,                -- the token writes echo (useless without the cookie)
        number TEXT NOT NULL,              -- console_staff.number
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        place TEXT NOT NULL,               -- the window signed in at, or "hall"
        created REAL NOT NULL,             -- sign-in time (session_max_s counts from here)
        seen REAL NOT NULL                 -- last click, written at most every few seconds
    ) WITHOUT ROWID;
    CREATE TABLE console_alert_acks (      -- bad-review alerts acknowledged on /hall
        rating INTEGER PRIMARY KEY REFERENCES ratings(id),
        acked_by TEXT NOT NULL,            -- the manager's staff number
        acked_at REAL NOT NULL
    );
    """),
    # 评价二维码 (第五条): a rating records its channel, PJQ (the key terminal) or QR (a phone,
    # daemon/hall/mobile.py; its ratings carry the terminal id "QR" and a hall-wide sequence).
    # mobile_key signs the QR tokens and desk cards (daemon/hall/qrcodes.py): random, made
    # here, never leaves the hall. mobile_raters: a phone rater's name and phone, given with
    # consent (第六条), sealed with [mobile] identity_key_file: never in clear here.
    ("0009-qr-channel", """
    ALTER TABLE ratings ADD COLUMN channel TEXT NOT NULL DEFAULT 'PJQ';
    CREATE TABLE mobile_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        key BLOB NOT NULL
    );
    INSERT INTO mobile_key VALUES (1, randomblob(32));
    CREATE INDEX ratings_transaction ON ratings(transaction_id, terminal);
    CREATE TABLE mobile_raters (
        rating_id INTEGER PRIMARY KEY REFERENCES ratings(id),
        sealed BLOB NOT NULL,              -- AES-256-GCM(JSON {name, phone}), nonce first
        consent_at REAL NOT NULL           -- when the citizen ticked the consent line
    );
    """),
    # over-the-air updates of the terminals' app (daemon/hall/updates.py): the bundles hall IT
    # handed over, the rollouts (canaries first) and each terminal's part in them
    ("0010-updates", """
    CREATE TABLE update_bundles (          -- bundles hall IT handed over (hcp device update)
        version TEXT PRIMARY KEY,
        path TEXT NOT NULL,                -- the bundle file, in the hall folder's updates/
        size INTEGER NOT NULL,
        mlen INTEGER NOT NULL,             -- bytes of its manifest (the offer names it)
        sha256 TEXT NOT NULL,              -- of the whole file: a changed file is not served
        added_at REAL NOT NULL
    );
    CREATE TABLE update_rollouts (
        id INTEGER PRIMARY KEY,
        version TEXT NOT NULL REFERENCES update_bundles(version),
        created_at REAL NOT NULL,
        actor TEXT NOT NULL,
        scope TEXT NOT NULL,               -- all | window W03 | terminal T007
        canary INTEGER NOT NULL,           -- terminals that go first
        hold_s REAL NOT NULL,              -- how long they must stay healthy before the rest
        state TEXT NOT NULL CHECK (state IN ('canary', 'rollout', 'done', 'halted',
                                             'cancelled')),
        state_at REAL NOT NULL,
        note TEXT NOT NULL DEFAULT ''      -- why it halted, who rolled back
    );
    CREATE TABLE update_targets (
        rollout INTEGER NOT NULL REFERENCES update_rollouts(id),
        terminal TEXT NOT NULL,
        canary INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'waiting'
            CHECK (state IN ('waiting', 'offered', 'ok', 'failed')),
        offered_at REAL,
        state_at REAL,
        detail TEXT NOT NULL DEFAULT '',   -- the terminal's words when it rolled back
        PRIMARY KEY (rollout, terminal)
    ) WITHOUT ROWID;
    ALTER TABLE terminal_status ADD COLUMN update_state TEXT;  -- the status' `update`
    """),
    # 第十一条 (docs/integrity.md): the terminal's signed press delay (firmware 0.3.0 on; NULL
    # from older terminals and phones); when each terminal went on- or offline (a row per
    # change of its retained status), so that "offline while the window served" can be seen;
    # staff members' phone numbers and phone raters' numbers as keyed hashes (HMAC-SHA256
    # under a key derived from [mobile] identity_key_file, daemon/hall/phones.py), never in
    # clear: a staff number's last 4 digits are kept to show it masked (****1234).
    ("0011-integrity", """
    ALTER TABLE ratings ADD COLUMN press_delay_ms INTEGER;
    CREATE TABLE terminal_status_log (
        terminal TEXT NOT NULL,
        at REAL NOT NULL,                  -- when the daemon received the status
        online INTEGER NOT NULL
    );
    CREATE INDEX terminal_status_log_terminal ON terminal_status_log(terminal, at);
    INSERT INTO terminal_status_log (terminal, at, online)
        SELECT terminal, last_seen, online FROM terminal_status;
    ALTER TABLE console_staff ADD COLUMN phone_mac TEXT;
    ALTER TABLE console_staff ADD COLUMN phone_tail TEXT;
    ALTER TABLE mobile_raters ADD COLUMN phone_mac TEXT;
    """),
    # updates of MicroPython itself (the image) over the air: a bundle's kind, the image version
    # a terminal runs (its status' `img`), and targets that cannot take an image (a stock
    # partition layout: no OTA slot)
    ("0012-image-updates", """
    ALTER TABLE update_bundles ADD COLUMN kind TEXT NOT NULL DEFAULT 'app'
        CHECK (kind IN ('app', 'image'));
    ALTER TABLE terminal_status ADD COLUMN image TEXT;        -- the status' `img`
    CREATE TABLE update_targets_new (
        rollout INTEGER NOT NULL REFERENCES update_rollouts(id),
        terminal TEXT NOT NULL,
        canary INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'waiting'
            CHECK (state IN ('waiting', 'offered', 'ok', 'failed', 'unable')),
        offered_at REAL,
        state_at REAL,
        detail TEXT NOT NULL DEFAULT '',   -- the terminal's words when it rolled back
        PRIMARY KEY (rollout, terminal)
    ) WITHOUT ROWID;
    INSERT INTO update_targets_new SELECT rollout, terminal, canary, state, offered_at, state_at,
        detail FROM update_targets;
    DROP TABLE update_targets;
    ALTER TABLE update_targets_new RENAME TO update_targets;
    """),
    # a phone rater's consented identity (第六条) goes to the store as a record of its own,
    # kind `rater` (ref: mobile_raters.rating_id), queued in the same transaction as the
    # mobile_raters row, so that the store's case for the bad review becomes real-name and its
    # follow-up (回访) can reach the citizen. The forwarder seals it again for the store
    # (daemon/batches.py, seal_rater): never in clear here, not even in forward_batches.body.
    # Those given before this migration go too: the citizen consented to the follow-up then.
    ("0013-forward-raters", """
    CREATE TRIGGER forward_rater AFTER INSERT ON mobile_raters BEGIN
        INSERT INTO forward_outbox (kind, ref, queued_at)
            VALUES ('rater', NEW.rating_id, NEW.consent_at);
    END;
    INSERT INTO forward_outbox (kind, ref, queued_at)
        SELECT 'rater', rating_id, consent_at FROM mobile_raters ORDER BY consent_at;
    """),
]


def connect(path: str) -> sqlite3.Connection:
    """Open (and create or migrate) the hall database."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                 " (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        try:
            conn.executescript("BEGIN IMMEDIATE;\n%s;\nINSERT INTO schema_migrations VALUES"
                               " ('%s', julianday('now'));\nCOMMIT;" % (sql, name))
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
