"""The province's side as real parts: a sandbox process (FastAPI on uvicorn) with its own SQLite
file, a store (both backends) holding a quarter of a hall, profiles and their keys."""
import re

import pytest

from haochaping.daemon.store import backends
from haochaping.daemon.store.province import delivery, profiles
from haochaping.tools.sim import processes, province_quarter
from haochaping.tools.sim.province_sandbox import SandboxProcess

PROFILES = ["gbt39046", "provincial"]
KEY = "sandbox-and-store-share-this-key-0123"


@pytest.fixture
def key_file(tmp_path):
    p = tmp_path / "province.key"
    p.write_text(KEY + "\n")
    p.chmod(0o600)
    return str(p)


def profile_file(tmp_path, name, **delivery):
    """A shipped profile with some [delivery] values changed, as a file of its own."""
    with open(profiles.resolve(name), encoding="utf-8") as f:
        text = f.read()
    for k, v in delivery.items():
        text = re.sub(r"(?m)^%s = .*$" % k, "%s = %s" % (k, v), text)
    path = tmp_path / ("%s.toml" % name)
    path.write_text(text, encoding="utf-8")
    return str(path)


def sandbox(tmp_path, profile_path, key_file, db_name="sandbox.sqlite"):
    return SandboxProcess(profile_path, processes.free_port(), str(tmp_path / db_name),
                          key_file).start()


@pytest.fixture
def quarter_store(store_db):
    """A store (SQLite or PostgreSQL) holding 2026Q3 of hall H01."""
    st = backends.open_store(store_db)
    made = province_quarter.fill(st, "2026Q3", per_day=3)
    st.made = made
    st.db = store_db
    yield st
    st.close()


def owed(st, profile):
    """Every key the store owes the province over the quarter (from its own tables)."""
    import datetime
    keys = {k: set() for k in profile.kinds}
    day = datetime.date(2026, 7, 1)
    while day <= datetime.date(2026, 12, 31):
        for k, v in delivery.expected(st, profile, day.isoformat()).items():
            keys[k] |= v
        day += datetime.timedelta(1)
    return keys


def held(sb):
    """What the sandbox accepted, as {kind: {"pno#n"}}."""
    out = {}
    for kind, pno, n in sb.accepted()["keys"]:
        out.setdefault(kind, set()).add("%s#%d" % (pno, n))
    return out
