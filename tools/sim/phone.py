"""A citizen rating on their phone (评价二维码): scans the window's desk card, is sent to the
window's open prompt, taps a level, and after a bad review a reason. Plain HTTP forms, as the
phone page works without JavaScript (daemon/hall/mobile.py)."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, qrcodes
from haochaping.daemon.hall.settings import HallConfig


def desk_card_urls(cfg: HallConfig) -> dict[str, str]:
    """{window: its desk card's URL} of a hall whose [mobile] listener is on."""
    conn = db.connect(cfg.hall.database)
    try:
        return dict(qrcodes.desk_cards(conn, cfg))
    finally:
        conn.close()


def _post(url: str, form: dict[str, str]) -> str:
    """POST the form, follow the redirects; return the final URL."""
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=15) as r:
        return str(r.geturl())


def rate(card_url: str, level: int, reason: str | None = None) -> str:
    """Rate the window's open prompt by phone; return where the page ended ("thanks", "more")
    or raise HcpError with the page's status when it refused (nothing open, already rated)."""
    try:
        with urllib.request.urlopen(card_url, timeout=15) as r:   # the card -> /r/<token>
            page = str(r.geturl())
        end = _post(page, {"level": str(level)})
        if end.endswith("/more"):
            end = _post(end, {"reason": reason} if reason else {})
    except urllib.error.HTTPError as e:
        raise HcpError("the phone page refused (HTTP %d)" % e.code) from None
    except OSError as e:
        raise HcpError("the phone page did not answer: %s" % e) from None
    return end.rsplit("/", 1)[-1]
