"""The hall's SQLite database: schema, versioned migrations, and connection settings.

WAL with synchronous=FULL: a commit is on disk when it returns, which is what an ack promises.
Open it with `sqlite-utils tables hall.sqlite --counts` or `datasette hall.sqlite`.
"""
import sqlite3

# Each entry migrates from version i to i+1; PRAGMA user_version records where a file stands.
MIGRATIONS = [
    """
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
    """,
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
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for i in range(version, len(MIGRATIONS)):
        try:
            conn.executescript("BEGIN IMMEDIATE;\n%s\nPRAGMA user_version=%d;\nCOMMIT;"
                               % (MIGRATIONS[i], i + 1))
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
