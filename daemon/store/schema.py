"""The store's schema as named, versioned migrations, applied by the store itself at start.

One list for both backends: the SQL is plain, only three type names differ ({real}, {blob},
{bigint}). To change the schema APPEND an entry; never edit one that has shipped.
`store_migrations` records which ran. Times are seconds since 1970 (UTC), as the hall sends them.
ratings.outcome (free text) also takes `late`, which only the store sets (第七条, defaults.py):
no migration was needed for it.
"""

TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"real": "REAL", "blob": "BLOB", "bigint": "INTEGER"},
    "postgres": {"real": "DOUBLE PRECISION", "blob": "BYTEA", "bigint": "BIGINT"},
}

MIGRATIONS: list[tuple[str, str]] = [
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
    ("0002-store-rules", """
    CREATE INDEX transactions_finished ON transactions (finished_at);
    CREATE INDEX ratings_bad_batch ON ratings (hall, batch) WHERE level >= 4;
    CREATE TABLE appeals (                 -- 第十条 复核申请, one per rating at most
        id TEXT PRIMARY KEY,               -- A + 8 hex
        rating_uid TEXT NOT NULL UNIQUE,   -- the bad review appealed against (kept, never deleted)
        unit TEXT NOT NULL,                -- who appeals: the rating's hall or department code
        reason TEXT NOT NULL,
        filed_at {real} NOT NULL,
        filing_deadline {real} NOT NULL,   -- end of the 3rd working day after the rating
        decision_due TEXT NOT NULL,        -- YYYY-MM-DD, 10th working day after filing
        via TEXT NOT NULL,                 -- cli | api
        status TEXT NOT NULL,              -- pending | upheld | rejected
        decided_at {real},
        decision_reason TEXT
    );
    CREATE TABLE cases (                   -- 第十二条 rectification of a bad review
        id TEXT PRIMARY KEY,               -- C + 8 hex of the rating uid
        rating_uid TEXT NOT NULL UNIQUE,
        tx_uid TEXT NOT NULL,
        hall TEXT NOT NULL,
        level INTEGER NOT NULL,
        real_name INTEGER NOT NULL,        -- the transaction carries a (consented) identity
        opened_at {real} NOT NULL,
        due TEXT NOT NULL,                 -- YYYY-MM-DD, 15th working day (or the extended day)
        status TEXT NOT NULL,              -- open | closed | withdrawn (appeal upheld)
        closed_at {real},
        result TEXT
    );
    CREATE TABLE case_events (             -- 第十二条/第十三条: the auditable loop of a case
        case_id TEXT NOT NULL,
        at {real} NOT NULL,
        kind TEXT NOT NULL,                -- opened | follow-up | extended | closed | withdrawn
        channel TEXT,                      -- follow-up: phone | sms | online
        feedback TEXT,                     -- follow-up: satisfied | unsatisfied | no-answer
        note TEXT,
        due TEXT
    );
    CREATE INDEX case_events_case ON case_events (case_id, at);
    CREATE TABLE unit_tokens (             -- bearer tokens of rated units for POST /v1/appeals
        unit TEXT PRIMARY KEY,
        token_sha256 TEXT NOT NULL,
        added_at {real} NOT NULL,
        revoked_at {real}
    );
    """),
    ("0003-province-delivery", """
    CREATE INDEX transactions_received ON transactions (received_at);
    CREATE INDEX ratings_received ON ratings (received_at);
    CREATE TABLE province_items (          -- 第十五条: every fact the store owes a province, once
        target TEXT NOT NULL,              -- the delivery profile's name (one province, one target)
        n {bigint} NOT NULL,               -- the order of delivery, from 1
        kind TEXT NOT NULL,                -- service | evaluation | correction
        uid TEXT NOT NULL,                 -- the transaction; a correction: its appeal
        ref TEXT NOT NULL,                 -- the rating sent (evaluation) or corrected
        project_no TEXT NOT NULL,          -- 办件编号, as the profile builds it
        assess_number INTEGER NOT NULL,    -- 评价次数 (0 for service data)
        day TEXT NOT NULL,                 -- YYYY-MM-DD (Asia/Shanghai) of the fact, for reconcile
        state TEXT NOT NULL,               -- waiting | sent | quarantined | dropped
        attempts INTEGER NOT NULL,         -- posts that carried it and were refused or unanswered
        queued_at {real} NOT NULL,
        sent_at {real},                    -- acknowledged by the province
        batch TEXT,                        -- the post that was acknowledged (or refused)
        code TEXT,                         -- the province's code for a refusal
        reason TEXT,                       -- the province's words for a refusal (checked, cleaned)
        quarantined_at {real},
        decided_at {real},                 -- retry / drop by a person (province_audit)
        decided_by TEXT,
        note TEXT,
        PRIMARY KEY (target, n)
    );
    CREATE UNIQUE INDEX province_items_key ON province_items (target, kind, uid);
    CREATE INDEX province_items_state ON province_items (target, state, kind, n);
    CREATE INDEX province_items_day ON province_items (target, day);
    CREATE TABLE province_state (          -- one row per target: who delivers, how it goes
        target TEXT PRIMARY KEY,
        owner TEXT,                        -- host:pid of the deliverer holding the lease
        lease_until {real},
        scanned_at {real},                 -- the last scan for new facts started then
        full_scan_at {real},
        last_success_at {real},
        last_error TEXT,
        last_error_at {real},
        failures INTEGER NOT NULL,         -- posts failed in a row (back-off)
        posts INTEGER NOT NULL,
        sent INTEGER NOT NULL
    );
    CREATE TABLE province_audit (          -- quarantine retry/drop: who, when, why
        at {real} NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        n {bigint} NOT NULL,
        detail TEXT NOT NULL
    );
    """),
    # 评价渠道 per rating (第五条): PJQ (the key terminal) or QR (评价二维码, the citizen's
    # phone); a transaction's own `channel` stays the hall's. Province delivery sends a rating's.
    ("0004-rating-channel", """
    ALTER TABLE ratings ADD COLUMN channel TEXT NOT NULL DEFAULT 'PJQ';
    """),
    ("0005-scale", """
    CREATE TABLE store_sweeps (            -- where each rule job's sweep got to (sweeps.py)
        job TEXT PRIMARY KEY,              -- defaults | cases
        through {real},                    -- defaults: every transaction finished earlier is judged
        started_at {real} NOT NULL,        -- store clock at the last sweep's start (received_at)
        full_at {real} NOT NULL            -- store clock at the last sweep over every row
    );
    -- one unit's transactions and their ratings read from the indexes alone (scores.py)
    CREATE INDEX transactions_department ON transactions
        (department, finished_at, uid, hall, window_id, staff);
    CREATE INDEX transactions_window ON transactions
        (hall, window_id, finished_at, uid, department, staff);
    CREATE INDEX transactions_staff ON transactions
        (hall, staff, finished_at, uid, department, window_id);
    CREATE INDEX ratings_tx_counted ON ratings (tx_uid, outcome, is_default, rated_at, uid, level);
    DROP INDEX ratings_tx;
    CREATE INDEX cases_hall_status ON cases (hall, status, opened_at);
    CREATE INDEX cases_status_due ON cases (status, due);
    CREATE INDEX appeals_status ON appeals (status, filed_at);
    """),
    ("0006-archive", """
    CREATE TABLE archived_reports (        -- archive.py: a quarter's figures once its rows left
        period TEXT PRIMARY KEY,           -- 2023Q1
        figures TEXT NOT NULL,             -- quarterly.figures() as JSON
        archived_at {real} NOT NULL
    );
    """),
    # 第十一条 (docs/integrity.md): the terminal's signed press delay, ms from the prompt lighting
    # to the key press (firmware 0.3.0 on); NULL for older terminals, phones and defaults
    ("0007-press-delay", """
    ALTER TABLE ratings ADD COLUMN press_delay_ms INTEGER;
    """),
    # explain of a hall that sends no department code (scores.UNIT_FROM), from the index alone:
    # before, that branch read every transaction of the hall to find those without a code
    ("0008-explain", """
    CREATE INDEX transactions_no_department ON transactions (hall, finished_at, uid)
        WHERE department = '';
    """),
    # explain of a large unit (unit_months.py): each closed month's figures per hall and unit,
    # and whether they still hold (a version raised by every change to that hall-month)
    ("0009-unit-months", """
    CREATE TABLE unit_months (
        month TEXT NOT NULL,               -- 2025-10 (Asia/Shanghai: the month it finished)
        hall TEXT NOT NULL,
        kind TEXT NOT NULL,                -- department | window | staff
        unit TEXT NOT NULL,                -- as scores.units_of: D1, window:H01/W01, staff:H01/0012
        c1 INTEGER NOT NULL, c2 INTEGER NOT NULL, c3 INTEGER NOT NULL, c4 INTEGER NOT NULL,
        c5 INTEGER NOT NULL,               -- counted citizen ratings per level
        x1 INTEGER NOT NULL, x2 INTEGER NOT NULL, x3 INTEGER NOT NULL, x4 INTEGER NOT NULL,
        x5 INTEGER NOT NULL,               -- citizen ratings excluded by an upheld appeal
        d INTEGER NOT NULL,                -- transactions rated by default (第七条), given or due
        PRIMARY KEY (month, hall, kind, unit)
    );
    CREATE INDEX unit_months_unit ON unit_months (kind, unit, month);
    CREATE TABLE unit_month_state (
        month TEXT NOT NULL,
        hall TEXT NOT NULL,                -- '' : the month was built for every hall
        version INTEGER NOT NULL,          -- raised by whatever changes the hall-month
        fresh INTEGER NOT NULL,            -- the version its kept figures were built at
        PRIMARY KEY (month, hall)
    );
    """),
]


def statements(dialect: str, sql: str) -> list[str]:
    """Split a migration into statements, with the dialect's type names filled in."""
    sql = sql.format(**TYPES[dialect])
    lines = [ln.split("--", 1)[0].rstrip() for ln in sql.splitlines()]
    sql = "\n".join(ln for ln in lines if ln.strip())
    return [stmt.strip() for stmt in sql.split(";") if stmt.strip()]
