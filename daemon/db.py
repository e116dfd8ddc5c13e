"""The hall's SQLite database: schema, versioned migrations, and connection settings.

WAL with synchronous=FULL: a commit is on disk when it returns, which is what an ack promises.
Open it with `sqlite-utils tables hall.sqlite --counts` or `datasette hall.sqlite`.
"""
import sqlite3

# Named migrations, applied once each, in this order; `schema_migrations` records which ran.
# To change the schema, APPEND a new (name, sql) entry; never edit one that has shipped.
MIGRATIONS = [
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
]


def connect(path):
    """Open (and create or migrate) the hall database."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    return conn


def migrate(conn):
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
