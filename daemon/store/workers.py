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

import concurrent.futures.process
import hashlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager
from multiprocessing.process import BaseProcess
from typing import ClassVar, Literal, NoReturn

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
    """A pool of `n` batch workers for the store at `db` (a SQLite path or a postgresql:// URL).

    A worker that dies (killed, out of memory) breaks the whole pool: the executor fails what
    was given to it and stops the other workers. A watcher thread waits on the workers' process
    sentinels and starts a new pool as soon as one ends, so the store is back at full strength
    whether or not a batch comes (a batch that meets the broken pool first starts it itself;
    whichever comes first does it, once)."""

    RETRY_S: ClassVar[float] = 1.0  # after a pool that could not be started (database away)

    def __init__(self, db: str, n: int, identity_key: str | None = None) -> None:
        self.db, self.n, self.identity_key = db, n, identity_key
        # spawn, not fork: the server has threads, and a forked child would inherit their locks
        self._ctx = multiprocessing.get_context("spawn")
        self._sqlite = not db.startswith(("postgresql://", "postgres://"))
        self._mutex = threading.Lock()
        self._closing = threading.Event()
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)  # close() wakes the watcher
        self._pool, self._procs = self._new_pool()
        self._watcher = threading.Thread(target=self._watch, name="store-workers-watch",
                                         daemon=True)
        self._watcher.start()

    def _new_pool(self) -> tuple[ProcessPoolExecutor, list[BaseProcess]]:
        """A pool with all its workers started (so the first batch does not wait for one), and
        a new write lock: a worker killed while it wrote never gave the old one back. Also its
        worker processes, for their sentinels."""
        write_lock = self._ctx.Lock() if self._sqlite else None
        pool = ProcessPoolExecutor(
            self.n, mp_context=self._ctx, initializer=_start,
            initargs=(os.getpid(), self.db, self.identity_key, write_lock,
                      logging.getLogger().getEffectiveLevel()))
        try:
            for f in [pool.submit(_ready) for _ in range(self.n)]:  # each submit starts one
                f.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        # all n are started and a pool never starts more (none can end without breaking it)
        return pool, list(pool._processes.values())

    def _restart(self, pool: ProcessPoolExecutor) -> None:
        """Replace `pool`, broken by a worker that died, unless that was done already."""
        with self._mutex:
            if self._pool is not pool or self._closing.is_set():
                return
            log.error("a batch worker died; starting the workers again")
            # the others go (as the executor itself stops them once it sees the pool broken):
            # the dead one may have held the lock of the queue they read their batches from,
            # and they would never read again, nor stop when asked to
            for p in self._procs:
                p.terminate()
            self._pool, self._procs = self._new_pool()

    def _watch(self) -> None:
        """The watcher thread: wait until a worker ends (or close()), then start a new pool."""
        while not self._closing.is_set():
            with self._mutex:
                pool, procs = self._pool, self._procs
            multiprocessing.connection.wait([p.sentinel for p in procs] + [self._wake_r])
            # the interpreter is exiting (without close(): a failed start of `hcp store serve`):
            # concurrent.futures stops every pool's workers then, after setting this flag
            if self._closing.is_set() or concurrent.futures.process._global_shutdown:
                return
            try:
                self._restart(pool)
            except Exception:  # e.g. the database is away: the new workers could not open it
                log.exception("the batch workers could not be started; trying again in %g s",
                              self.RETRY_S)
                self._closing.wait(self.RETRY_S)

    def _current(self) -> ProcessPoolExecutor:
        """The pool to use (while it is being started again: the new one, once it is up)."""
        with self._mutex:
            return self._pool

    def store_batch(self, hall: str, batch: str, body: bytes) -> BatchAnswer:
        """store_batch() in a worker. Any exception but BadBatch: the batch may not be stored (if
        a worker died under it, the pool is started again; the hall's retry finds out)."""
        pool = self._current()
        try:
            future = pool.submit(_store_batch, hall, batch, body)
        except BrokenProcessPool:
            # a worker died while idle and the watcher has not yet replaced the pool: the batch
            # was never given to it, so it waits for the new pool rather than be refused
            self._restart(pool)
            pool = self._current()
            future = pool.submit(_store_batch, hall, batch, body)
        try:
            answer = future.result()
        except BrokenProcessPool:
            self._restart(pool)
            raise
        if answer[0] == "refused":
            raise BadBatch(answer[2], answer[1])
        return answer[1]

    def close(self) -> None:
        self._closing.set()
        self._wake_w.send_bytes(b"")
        self._watcher.join()
        with self._mutex:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._wake_r.close()
        self._wake_w.close()
