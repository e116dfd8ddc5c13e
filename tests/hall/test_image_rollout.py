"""A rollout of MicroPython itself (`hcp device update --image`) as the hall daemon runs it
(daemon/hall/updates.py), from the statuses terminals publish (ingest). If these failed, hall IT
could start an image rollout that never finishes (the daemon not seeing a terminal keep the new
image), a terminal without OTA slots would halt every rollout, or `hcp terminals` would not say
which MicroPython a terminal runs."""
import json

from click.testing import CliRunner

from haochaping.daemon.hall import db, ingest, updates
from haochaping.protocol import messages, topics
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import bundle, fleet, partitions, rollout
from haochaping.tools.sim import hall_kit
from tests import esp_images

_register()


def _status(conn, term, update="", img="", fw="0.2.0", now=1.0):
    ingest.handle(conn, "H01", topics.topic("H01", term, topics.STATUS),
                  messages.encode_status(term, True, fw, "b", 1000, 0, -50, None, None, update,
                                         img), now, 0)


def _targets(conn):
    return updates.rollouts(conn)[0]


def test_an_image_rollout_goes_canary_first_and_skips_terminals_without_ota_slots(tmp_path):
    # if this failed, a new MicroPython would reach the whole hall before a canary kept it, or
    # a rollout would hang on a terminal flashed with the stock image
    cfg = hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02", "W03"))
    rollout.make_key(cfg.path)
    img = tmp_path / "ESP32_GENERIC-OTA-v1.25.0.bin"
    img.write_bytes(esp_images.merged(esp_images.app_image("v1.25.0", size=24 * 1024)))
    conn = db.connect(cfg.hall.database)
    for t in ("T001", "T002", "T003"):
        _status(conn, t, img="1.24.1")
    r = CliRunner().invoke(cli, ["device", "update", "--config", cfg.path, "--all", "--canary",
                                 "1", "--hold", "0", "--image", str(img), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    ver = res["version"]
    assert res["kind"] == "image" and ver.startswith("1.25.0+")
    # the bundle the daemon serves is signed, of kind image, and holds the app image alone
    data = (tmp_path / "hall" / "updates" / (ver + ".bundle")).read_bytes()
    m, mlen = bundle.read(data, rollout.public_key(cfg.path))
    assert m["kind"] == "image" and partitions.app_image(data[mlen + 256:])["version"] == \
        "v1.25.0"
    offers = updates.advance(conn, "H01", 2.0)
    assert [o[0].split("/")[3] for o in offers if o[1]] == ["T001"]     # the canary alone
    _status(conn, "T001", "ok " + ver, img=ver, now=3.0)
    offers = updates.advance(conn, "H01", 3.0)
    offered = sorted(o[0].split("/")[3] for o in offers if o[1])
    assert offered == ["T002", "T003"], offers                         # then the rest
    _status(conn, "T002", "unable %s no OTA slot: a stock image, flash -OTA" % ver, now=4.0)
    _status(conn, "T003", "ok " + ver, img=ver, now=4.0)
    updates.advance(conn, "H01", 4.0)
    done = _targets(conn)
    assert done["state"] == "done" and done["kind"] == "image"
    assert done["targets"] == {"T001": "ok", "T002": "unable", "T003": "ok"}
    assert "no OTA slot (stock image) on T002" in done["note"]
    rows = {r["terminal"]: r for r in fleet.terminal_rows(conn, 5.0)}
    assert rows["T001"]["image"] == ver and rows["T002"]["image"] == "1.24.1"
    assert "MICROPYTHON" in fleet.format_rows(list(rows.values()), 5.0)


def test_an_image_rollout_whose_canaries_cannot_take_it_halts(tmp_path):
    # if this failed, an image nobody had tried would be offered to the hall because the canary
    # could not take it
    cfg = hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02"))
    rollout.make_key(cfg.path)
    img = tmp_path / "app.bin"
    img.write_bytes(esp_images.app_image("v1.25.0", size=16 * 1024))   # an .app-bin alone
    res = rollout.hand_over(cfg.path, everyone=True, canary=1, hold_s=0, image=str(img))
    conn = db.connect(cfg.hall.database)
    updates.advance(conn, "H01", 2.0)
    _status(conn, "T001", "unable %s no OTA slot" % res["version"], now=3.0)
    offers = updates.advance(conn, "H01", 3.0)
    r = _targets(conn)
    assert r["state"] == "halted" and "no canary can take image updates" in r["note"]
    assert all(not o[1] for o in offers)                              # offers withdrawn
    assert r["targets"]["T002"] == "waiting"


def test_a_stock_image_file_is_refused_for_an_image_rollout(tmp_path):
    # if this failed, hall IT would roll out a MicroPython built without the bootloader's
    # rollback, and get no hint to use ESP32_GENERIC-OTA
    cfg = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    rollout.make_key(cfg.path)
    img = tmp_path / "ESP32_GENERIC-v1.25.0.bin"
    img.write_bytes(esp_images.merged(esp_images.app_image(), partitions.STOCK_4MIB))
    r = CliRunner().invoke(cli, ["device", "update", "--config", cfg.path, "--all", "--image",
                                 str(img)])
    assert r.exit_code == 1 and "ESP32_GENERIC-OTA" in r.output and "Traceback" not in r.output
