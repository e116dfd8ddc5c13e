"""The QR channel's ratings reach the store with their channel (评价二维码, 第五条): the hall
daemon as a process, a phone over real HTTP, the store over HTTPS on SQLite and PostgreSQL."""
from haochaping.daemon.store.province import profiles
from tests.conftest import wait_until
from tests.hall.test_qr_channel import card_path, follow, open_prompt, phone_hall

from .conftest import backlog, delivered


def test_a_phone_rating_arrives_at_the_store_as_channel_qr_and_a_key_press_as_pjq(
        store, hall, terminals, hall_db):
    # if this fails, the province is told a phone rating came from the hall's key terminal
    with phone_hall(hall, terminals) as (cfg, api, terms, phone):
        open_prompt(api, terms, "W01", "A001")
        card = card_path(cfg, "W01")
        _, headers, _ = phone.get(card)
        page = follow(card, headers["location"])
        assert phone.post(page, {"level": "4"})[0] == 303
        assert phone.post(page + "/more", {"reason": "efficiency"})[0] == 303
        open_prompt(api, terms, "W02", "B001").press(1)
        wait_until(lambda: hall_db("SELECT COUNT(*) FROM ratings")[0][0] == 2,
                   what="both ratings stored")
        delivered(store, hall_db)
        assert backlog(hall_db) == 0
        rows = {r["window"]: r for r in store.query(lambda s: s.ratings("H01", 0))}
        assert rows["W01"]["channel"] == "QR" and rows["W01"]["reason"] == "efficiency"
        assert rows["W02"]["channel"] == "PJQ"
        # and on to the province: the GB/T 39046 code of 二维码 is 3, of the hall's terminal 5
        codes = profiles.load("gbt39046").channel_codes
        assert (codes["QR"], codes["PJQ"]) == ("3", "5")
