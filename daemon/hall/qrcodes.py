"""评价二维码 (RULES.md 第五条): what the hall's QR codes carry, and how they are drawn.

Two forms, both opening the phone page of daemon/hall/mobile.py:
- per transaction, on the window staff page while the rating prompt is open:
      <public_url>r/<token>     token = base64url(transaction id, expiry) "." base64url(MAC)
  The MAC (HMAC-SHA256, 128 bits kept) makes it unguessable; it expires with the prompt, and
  the transaction takes one rating from a phone (the daemon refuses a second), so it is
  single-use in effect.
- per window, on a printed desk card:
      <public_url>c/<window>.<MAC>    (80 bits kept)
  It names no transaction: at scan time it opens the window's prompt that is open then.
The key is random, made by the hall database's migration (table mobile_key); it never leaves
the hall. A key file is not needed: whoever can read the database can write ratings anyway.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import io
import sqlite3
import struct
from collections.abc import Sequence

import segno

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import registry
from haochaping.daemon.hall.settings import HallConfig, MobileSection
from haochaping.protocol import topics

TOKEN_MAC = 16  # bytes of MAC in a transaction token (128 bits)
CARD_MAC = 10   # bytes of MAC in a desk card (80 bits: printed, seen by everyone in the hall)
_TOKEN = struct.Struct(">QI")  # transaction id, expiry (Unix seconds)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes | None:
    if not s or len(s) > 64 or not all(c.isalnum() or c in "-_" for c in s):
        return None
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except ValueError:
        return None


def key(conn: sqlite3.Connection) -> bytes:
    """The hall's QR key (made by migration 0009-qr-channel)."""
    return bytes(conn.execute("SELECT key FROM mobile_key WHERE id=1").fetchone()[0])


def _mac(k: bytes, hall: str, what: bytes, n: int) -> bytes:
    return hmac.new(k, b"hcp-qr-1\n" + hall.encode() + b"\n" + what, hashlib.sha256).digest()[:n]


def make_token(k: bytes, hall: str, tx: int, expires: float) -> str:
    body = _TOKEN.pack(tx, int(expires) + 1)  # rounded up: never earlier than the prompt
    return _b64(body) + "." + _b64(_mac(k, hall, b"tx\n" + body, TOKEN_MAC))


def read_token(k: bytes, hall: str, token: str) -> tuple[int, int] | None:
    """(transaction id, expiry) of a token this hall made, or None (forged, cut, malformed)."""
    body_s, _, mac_s = token.partition(".")
    body, mac = _unb64(body_s), _unb64(mac_s)
    if body is None or mac is None or len(body) != _TOKEN.size:
        return None
    if not hmac.compare_digest(mac, _mac(k, hall, b"tx\n" + body, TOKEN_MAC)):
        return None
    tx, expires = _TOKEN.unpack(body)
    return tx, expires


def make_card(k: bytes, hall: str, window: str) -> str:
    return window + "." + _b64(_mac(k, hall, b"card\n" + window.encode(), CARD_MAC))


def read_card(k: bytes, hall: str, card: str) -> str | None:
    """The window a desk card of this hall names, or None (forged, malformed)."""
    window, _, mac_s = card.rpartition(".")
    mac = _unb64(mac_s)
    if not topics.valid_id(window) or mac is None:
        return None
    if not hmac.compare_digest(mac, _mac(k, hall, b"card\n" + window.encode(), CARD_MAC)):
        return None
    return window


def public_url(cfg: MobileSection) -> str:
    """What the QR codes encode: [mobile] public_url, or http://<listen>/ (a hall network)."""
    if cfg.public_url:
        return cfg.public_url
    host, _, port = cfg.listen.rpartition(":")
    return "http://%s:%s/" % (host, port)


def desk_cards(conn: sqlite3.Connection, cfg: HallConfig,
               windows: Sequence[str] = ()) -> list[tuple[str, str]]:
    """[(window, its desk card's URL)] for `windows` (every paired window if none given)."""
    if not cfg.mobile.listen:
        raise HcpError("the QR channel is off: set [mobile] listen (and public_url, the address"
                       " phones reach it by) in %s" % (cfg.path or "hall.toml"))
    paired = sorted({p["window"] for p in registry.pairings(conn)})
    for w in windows:
        if w not in paired:
            raise HcpError("window %s has no terminal paired (this hall's windows: %s)"
                           % (w, ", ".join(paired) or "none yet"))
    k, base = key(conn), public_url(cfg.mobile)
    return [(w, card_url(base, make_card(k, cfg.hall.id, w))) for w in (windows or paired)]


def token_url(public_url: str, token: str) -> str:
    return public_url + "r/" + token


def card_url(public_url: str, card: str) -> str:
    return public_url + "c/" + card


def open_token(conn: sqlite3.Connection, key: bytes, hall: str, window: str) -> str | None:
    """The token of the window's prompt open now (for its desk card and staff page), or None."""
    tx = conn.execute("SELECT id, prompt_expires_at FROM transactions WHERE window=? AND token"
                      " IS NOT NULL AND prompt_closed_at IS NULL ORDER BY id DESC LIMIT 1",
                      (window,)).fetchone()
    if tx is None:
        return None
    return make_token(key, hall, tx["id"], tx["prompt_expires_at"])


def phone_base(cfg: HallConfig) -> str | None:
    """The phone page's public address the QR codes carry; None without [mobile]."""
    return public_url(cfg.mobile) if cfg.mobile.listen else None


def prompt_url(conn: sqlite3.Connection, hall: str, base: str | None,
               window: str) -> str | None:
    """The address the window's open prompt's 评价二维码 carries (staff page, window API: a
    screen beside the window shows it), or None when no prompt is open or there is no phone
    page (`base` None: phone_base)."""
    if base is None:
        return None
    token = open_token(conn, key(conn), hall, window)
    return None if token is None else token_url(base, token)


def _qr(url: str) -> segno.QRCode:
    # M: 15% of the code may be lost (a scratched card, glare on a screen) and still read
    return segno.make_qr(url, error="m")


def svg(url: str, scale: int = 4) -> str:
    """The QR code of `url` as an <svg> element (no XML declaration, no fixed size)."""
    return str(_qr(url).svg_inline(scale=scale, omitsize=True))


def svg_document(url: str, scale: int = 4) -> bytes:
    out = io.BytesIO()
    _qr(url).save(out, kind="svg", scale=scale, border=4)
    return out.getvalue()


def png(url: str, scale: int = 10) -> bytes:
    out = io.BytesIO()
    _qr(url).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


INSTRUCTIONS = ("请用微信扫一扫，为本窗口刚办完的事项评价",
                "办理结束、窗口提示「请评价」后扫码；每件事只能评价一次")
_SHEET = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>%(title)s</title>
<style>
@page { size: A4; margin: 12mm; }
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 0; }
.card { width: 88mm; height: 128mm; box-sizing: border-box; border: 1px dashed #999;
  padding: 6mm; margin: 0 4mm 6mm 0; display: inline-block; vertical-align: top;
  text-align: center; page-break-inside: avoid; }
.card h1 { font-size: 9mm; margin: 0 0 2mm; }
.card h2 { font-size: 5mm; margin: 0 0 3mm; font-weight: normal; }
.card svg { width: 60mm; height: 60mm; }
.card p { font-size: 4mm; margin: 2mm 0; }
.card .url { font-size: 2.6mm; color: #555; word-break: break-all; }
</style></head><body>
%(cards)s
</body></html>
"""
_CARD = """<div class="card"><h1>窗口 %(window)s</h1><h2>%(hall)s · 政务服务“好差评”</h2>
%(svg)s
<p>%(line1)s</p><p>%(line2)s</p><p class="url">%(url)s</p></div>"""


def card_html(hall_name: str, window: str, url: str) -> str:
    """One desk card: the window's name, the QR code and the instructions, in Chinese."""
    e = html.escape
    return _CARD % {"window": e(window), "hall": e(hall_name), "svg": svg(url),
                    "line1": INSTRUCTIONS[0], "line2": INSTRUCTIONS[1], "url": e(url)}


def sheet(hall_name: str, cards: Sequence[tuple[str, str]]) -> str:
    """A printable HTML page (A4, two cards a row) of desk cards: cards = [(window, url)]."""
    return _SHEET % {"title": html.escape("%s 评价二维码" % hall_name),
                     "cards": "\n".join(card_html(hall_name, w, u) for w, u in cards)}


def card_svg(hall_name: str, window: str, url: str) -> bytes:
    """One desk card as an SVG document (prints at 88 x 128 mm): name, code, instructions."""
    e = html.escape
    code = _qr(url)
    n = code.symbol_size(scale=1, border=4)[0]
    modules = svg(url, scale=1)
    modules = modules.replace("<svg ", '<svg x="14" y="30" width="60" height="60" ', 1)
    return ("""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="88mm" height="128mm" viewBox="0 0 88 128">
<rect width="88" height="128" fill="#fff"/>
<g font-family="Noto Sans CJK SC, Microsoft YaHei, sans-serif" text-anchor="middle">
<text x="44" y="15" font-size="9" font-weight="bold">窗口 %s</text>
<text x="44" y="24" font-size="4.5">%s · 政务服务“好差评”</text>
<text x="44" y="100" font-size="3.6">%s</text>
<text x="44" y="106" font-size="3.2">%s</text>
<text x="44" y="116" font-size="2.2" fill="#555">%s</text>
</g>
%s
<!-- %d modules a side -->
</svg>
""" % (e(window), e(hall_name), INSTRUCTIONS[0], INSTRUCTIONS[1], e(url), modules,
       n)).encode()
