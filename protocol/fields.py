"""The rules every field obeys wherever it enters: a terminal's message, the window API, the
console, `hcp window start` (and the store, which reads the same values). One place, so that what
the hall stores and acks is what every later reader can keep.

Each check returns the value or raises ValueError("<field>: <what it must be>"); the daemon
stores that reason with a refused message, the API answers it with a 400.

- Whole numbers: int, never bool, 0..2^53-1 unless a field has a tighter bound: the largest a
  JSON reader keeps exact (JavaScript, and any parser that reads numbers as doubles) and well
  inside what SQLite and PostgreSQL store (signed 64 bits).
- Timestamps (Unix seconds): 0..MAX_TS, 9999-12-31 00:00 UTC, so that every time zone's date
  still falls in year 9999, the last one a datetime (Python's, PostgreSQL's) can show.
- Text: no C0 control characters (NUL included: PostgreSQL cannot store it), no DEL, no C1
  controls, no lone surrogates (a CPython str can hold them, UTF-8 cannot: SQLite's driver and
  every JSON encoder that writes UTF-8 fail on them), and a length limit in characters. Ids,
  tickets, codes and one-line texts allow no control character at all: none of them is ever
  more than one line, and a newline in a ticket would forge lines in logs and exports. Only a
  field declared multi-line (lines=True) may hold TAB, LF and CR; no field on the hall side is.
  No text holds the invisible characters that reverse or hide what follows (bidi overrides and
  isolates such as U+202E, marks, zero-width spaces, joiners, BOM): a ticket "A017<U+202E>..."
  would show staff, the manager page and a report something other than what was stored.
- Ids (hall, terminal, window, staff number): 1-32 of A-Z a-z 0-9 _ -, safe in MQTT topics,
  in the signed canonical bytes (no "|") and in file names.

Common subset of CPython and MicroPython: this file runs on the terminal too. Its limits are
plain names (no const): other modules read them.
"""
MAX_INT = 9007199254740991  # 2**53 - 1 (written out: the terminal's compiler need not fold it)
MAX_TS = 253402214400       # 9999-12-31T00:00:00Z
MAX_ID = 32
MAX_DELAY_MS = 86400000     # a press's delay since its prompt: a prompt is open a day at most
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_HEX = "0123456789abcdef"
# invisible: bidi marks, embeddings, overrides and isolates; zero-width space, joiners; word
# joiner and invisible operators; BOM. (A set of code points: MicroPython has no unicodedata.)
HIDDEN = {0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D,
          0x202E, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0x2066, 0x2067, 0x2068, 0x2069,
          0xFEFF}


def _bad(name, rule):
    return ValueError("%s: %s" % (name, rule))


def whole(name, v, lo=0, hi=MAX_INT):
    """An int (not a bool) in lo..hi."""
    if type(v) is not int or v < lo or v > hi:
        raise _bad(name, "must be a whole number %d..%d" % (lo, hi))
    return v


def timestamp(name, v):
    """Unix seconds, 0..MAX_TS (0: the sender did not know the time)."""
    return whole(name, v, 0, MAX_TS)


def delay_ms(name, v):
    """Milliseconds from a prompt appearing on a terminal to the key press: 0..MAX_DELAY_MS (the
    terminal keeps a prompt open a day at most; a small int on the ESP32, never a heap one)."""
    return whole(name, v, 0, MAX_DELAY_MS)


def flag(name, v):
    if type(v) is not bool:
        raise _bad(name, "must be true or false")
    return v


def is_id(s):
    """Hall, terminal, window and staff ids: 1-32 of [A-Za-z0-9_-]."""
    if type(s) is not str or not 0 < len(s) <= MAX_ID:
        return False
    return all(c in ID_CHARS for c in s)


def ident(name, v, empty=False):
    """An id (see is_id); with empty=True, "" too (the field was not given)."""
    if not (is_id(v) or (empty and v == "")):
        raise _bad(name, "must be 1-32 of A-Z a-z 0-9 _ -")
    return v


def bad_char(s, lines=False):
    """The first character of `s` that text may not hold, as (position, code point), or None."""
    for i, c in enumerate(s):
        o = ord(c)
        if o < 32:
            if not (lines and (o == 9 or o == 10 or o == 13)):
                return i, o
        elif 127 <= o < 160 or 0xD800 <= o < 0xE000 or o in HIDDEN:
            return i, o
    return None


def refused_char(o):
    """What bad_char found, in words: "a control character", "a lone surrogate", ..."""
    if 0xD800 <= o < 0xE000:
        return "a lone surrogate"
    if o in HIDDEN:
        return "an invisible or direction-changing character"
    return "a control character"


def text(name, v, max_len, min_len=0, lines=False):
    """A str of min_len..max_len characters with no control character and no lone surrogate
    (lines=True: TAB, LF and CR allowed)."""
    if type(v) is not str:
        raise _bad(name, "must be text")
    if not min_len <= len(v) <= max_len:
        if min_len:
            raise _bad(name, "must be %d to %d characters" % (min_len, max_len))
        raise _bad(name, "must be at most %d characters" % max_len)
    found = bad_char(v, lines)
    if found is not None:
        i, o = found
        raise _bad(name, "must not contain %s (U+%04X at character %d)"
                   % (refused_char(o), o, i + 1))
    return v


def clean(s, max_len):
    """`s` cut to max_len characters, each one text() would refuse replaced by "?": for what a
    sender reports about itself (a terminal's config errors) rather than refuses to send."""
    out = []
    for c in s[:max_len]:
        out.append("?" if bad_char(c) is not None else c)
    return "".join(out)


def choice(name, v, allowed):
    """One of `allowed`, a tuple of str (codes; numbers go through whole())."""
    if type(v) is not str or v not in allowed:
        raise _bad(name, "must be one of %s" % ", ".join([str(a) for a in allowed]))
    return v


def hex_text(name, v, n, empty=False):
    """Exactly n lowercase hex digits (tokens, signatures); with empty=True, "" too."""
    if type(v) is not str or not (len(v) == n or (empty and v == "")):
        raise _bad(name, "must be %d lowercase hex digits" % n)
    for c in v:
        if c not in _HEX:
            raise _bad(name, "must be %d lowercase hex digits" % n)
    return v
