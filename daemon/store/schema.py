"""The store's schema as named, versioned migrations, applied by the store itself at start.

One list for both backends: the SQL is plain, only three type names differ ({real}, {blob},
{bigint}). To change the schema APPEND an entry; never edit one that has shipped.
`store_migrations` records which ran. Times are seconds since 1970 (UTC), as the hall sends them.
"""

TYPES = {
    "sqlite": {"real": "REAL", "blob": "BLOB", "bigint": "INTEGER"},
    "postgres": {"real": "DOUBLE PRECISION", "blob": "BYTEA", "bigint": "BIGINT"},
}

MIGRATIONS = [
    ("0001-store-core", """
    CREATE TABLE halls (
        id TEXT PRIMARY KEY,
        key {blob} NOT NULL,               -- the hall's batch-signing key (HMAC-SHA256)
        name TEXT NOT NULL DEFAULT '',
        added_at {real} NOT NULL,
        revoked_at {real}
    );
    CREATE TABLE batches (                 -- every batch accepted, once; a replay is re-acked
        hall TEXT NOT NULL,
        batch TEXT NOT NULL,
        sha256 TEXT NOT NULL,              -- of the exact body; the same id with other bytes: 409
        records INTEGER NOT NULL,
        new_records INTEGER NOT NULL,
        received_at {real} NOT NULL,
        PRIMARY KEY (hall, batch)
    );
    CREATE TABLE transactions (            -- 办件
        uid TEXT PRIMARY KEY,              -- hall:tx:N
        hall TEXT NOT NULL,
        tx {bigint} NOT NULL,
        window_id TEXT NOT NULL,           -- the service window
        ticket TEXT NOT NULL,              -- 办件编号
        item TEXT NOT NULL,                -- 事项编码
        item_version TEXT NOT NULL,        -- 事项版本号
        department TEXT NOT NULL,          -- 实施机构/部门编码
        region TEXT NOT NULL,              -- 行政区划代码
        staff TEXT NOT NULL,
        channel TEXT NOT NULL,             -- PJQ (评价器)
        started_at {real} NOT NULL,
        finished_at {real} NOT NULL,       -- time handled (办结时间)
        rater_enc {blob},                  -- AES-GCM(identity), only with consent (第六条)
        batch TEXT NOT NULL,
        received_at {real} NOT NULL
    );
    CREATE INDEX transactions_hall_finished ON transactions (hall, finished_at);
    CREATE TABLE ratings (
        uid TEXT PRIMARY KEY,              -- hall:rating:terminal:seq
        hall TEXT NOT NULL,
        terminal TEXT NOT NULL,
        seq {bigint} NOT NULL,
        level INTEGER NOT NULL,            -- 1 非常满意 .. 5 非常不满意
        outcome TEXT NOT NULL,             -- counted | duplicate | unsolicited | expired
        tx_uid TEXT,                       -- the transaction it is bound to (hall:tx:N)
        rated_at {real} NOT NULL,
        hall_received_at {real} NOT NULL,
        is_default INTEGER NOT NULL,       -- 1: a default 基本满意 (第七条), not a press
        batch TEXT NOT NULL,
        received_at {real} NOT NULL
    );
    CREATE INDEX ratings_hall_rated ON ratings (hall, rated_at);
    CREATE INDEX ratings_tx ON ratings (tx_uid);
    CREATE TABLE reasons (                 -- bad-review reasons (服务效率/水平/态度/其他)
        uid TEXT PRIMARY KEY,              -- hall:reason:terminal:seq
        hall TEXT NOT NULL,
        terminal TEXT NOT NULL,
        seq {bigint} NOT NULL,
        ref_seq {bigint} NOT NULL,         -- seq of the rating it explains
        reason TEXT NOT NULL,
        rated_at {real} NOT NULL,
        batch TEXT NOT NULL,
        received_at {real} NOT NULL
    );
    CREATE INDEX reasons_ref ON reasons (hall, terminal, ref_seq);
    """),
]


def statements(dialect, sql):
    """Split a migration into statements, with the dialect's type names filled in."""
    sql = sql.format(**TYPES[dialect])
    lines = [ln.split("--", 1)[0].rstrip() for ln in sql.splitlines()]
    sql = "\n".join(ln for ln in lines if ln.strip())
    return [stmt.strip() for stmt in sql.split(";") if stmt.strip()]
