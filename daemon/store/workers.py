"""Batch workers: processes that decode, check and write the halls' batches for `hcp store serve`.

Why processes: in one CPython process the HTTPS threads, the decoding and checking of a batch and
the SQLite writer share one interpreter lock. SQLite gives that lock up while it writes, but
every time it hands back the writer waits for the thread that is decoding the next batch, and
the two end up taking turns (docs/store.md, "Figures"). A worker is a process of its own with a
single thread: it decodes one batch while another worker writes the previous one.

What a worker does is what the server did in its own thread: batches.parse_batch, then
store_batch with the batch's cases (rules_api.in_batch) in the same transaction. The server
still reads the body and checks the hall's signature before a batch goes to a worker.
SQLite: one worker writes at a time, under a lock the workers share (it wakes the next writer
at once; SQLite's own busy wait sleeps). PostgreSQL: the workers write side by side.
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager
from typing import Literal, NoReturn

from haochaping.daemon import batches
from haochaping.daemon.batches import BadBatch
from haochaping.daemon.store import backends, identity, rules_api
from haochaping.daemon.store.backends import BatchAnswer, Store

log = logging.getLogger(__name__)

# a lock the workers share (multiprocessing's), held while a batch is written
WriteLock = AbstractContextManager[object]

_store: Store | None = None             # in a worker: its own connection(s) to the store database
_write_lock: WriteLock | None = None    # in a worker, SQLite only: the lock the workers share


def _start(server: int, db: str, identity_key: str | None, write_lock: WriteLock | None,
           level: int) -> None:
    global _store, _write_lock
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us
    threading.Thread(target=_orphaned, args=(server,), daemon=True).start()
    # as `hcp` logs (tools/cli), to the server's own stderr, which a spawned worker inherits
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ident = identity.IdentityKey.load(identity_key) if identity_key else None
    _store = backends.open_store(db, ident)
    _write_lock = write_lock


def _orphaned(server: int) -> NoReturn:
    """A worker whose server is gone (killed: it had no time to stop us; perhaps even before
    this worker was up) stops too, rather than keep the database open with nobody to answer; a
    batch it was writing is rolled back."""
    while os.getppid() == server:
        time.sleep(0.5)
    os._exit(1)


def _ready() -> int:
    return os.getpid()


def store_batch(store: Store, hall: str, batch: str, body: bytes,
                write_lock: WriteLock | None = None) -> BatchAnswer:
    """Decode, check and store one batch whose signature is checked: backends.store_batch's
    answer, or BadBatch. What a worker does; the server does it itself when it has none."""
    h, b, parsed = batches.parse_batch(body, hall, batch)
    sha = hashlib.sha256(body).hexdigest()
    if write_lock is None:
        return store.store_batch(h, b, sha, parsed, then=rules_api.in_batch)
    with write_lock:
        return store.store_batch(h, b, sha, parsed, then=rules_api.in_batch)


def _store_batch(hall: str, batch: str, body: bytes
                 ) -> tuple[Literal["stored"], BatchAnswer] | tuple[Literal["refused"], int, str]:
    """In a worker: ("stored", answer) or ("refused", HTTP status, reason). A BadBatch goes back
    as a value: an exception's extra fields do not survive the trip between processes."""
    if _store is None:
        raise RuntimeError("not in a batch worker: _start has not run")
    try:
        return ("stored", store_batch(_store, hall, batch, body, _write_lock))
    except BadBatch as e:
        return ("refused", e.status, str(e))


class Workers:
    """A pool of `n` batch workers for the store at `db` (a SQLite path or a postgresql:// URL)."""

    def __init__(self, db: str, n: int, identity_key: str | None = None) -> None:
        self.db, self.n, self.identity_key = db, n, identity_key
        # spawn, not fork: the server has threads, and a forked child would inherit their locks
        self._ctx = multiprocessing.get_context("spawn")
        self._sqlite = not db.startswith(("postgresql://", "postgres://"))
        self._mutex = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool with all its workers started (so the first batch does not wait for one), and
        a new write lock: a worker killed while it wrote never gave the old one back."""
        write_lock = self._ctx.Lock() if self._sqlite else None
        pool = ProcessPoolExecutor(
            self.n, mp_context=self._ctx, initializer=_start,
            initargs=(os.getpid(), self.db, self.identity_key, write_lock,
                      logging.getLogger().getEffectiveLevel()))
        for f in [pool.submit(_ready) for _ in range(self.n)]:  # each submit starts a process
            f.result()
        return pool

    def store_batch(self, hall: str, batch: str, body: bytes) -> BatchAnswer:
        """store_batch() in a worker. Any exception but BadBatch: the batch may not be stored (if
        a worker died, the pool is started again; the hall's retry finds out)."""
        pool = self._pool
        try:
            answer = pool.submit(_store_batch, hall, batch, body).result()
        except BrokenProcessPool:
            with self._mutex:
                if self._pool is pool:
                    log.error("a batch worker died; starting the workers again")
                    self._pool = self._new_pool()
            raise
        if answer[0] == "refused":
            raise BadBatch(answer[2], answer[1])
        return answer[1]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
