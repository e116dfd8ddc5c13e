# The field rules (protocol/fields.py), case by case. Common subset: this same file runs under
# CPython (imported by test_fields.py) and under real MicroPython (as a script), so the terminal
# and the hall refuse the same values. Prints one line per failure, then "fields ok N" or
# "fields FAILED N".
import json

from haochaping.protocol import fields

BIG = 9007199254740991  # 2**53 - 1
SURROGATE = json.loads('"A\\ud800"')  # how a lone surrogate arrives: a JSON escape

# (function, args, keyword args, None if accepted or the start of the reason)
CASES = [
    ("whole", ("seq", BIG), {}, None),
    ("whole", ("seq", 0), {}, None),
    ("whole", ("seq", BIG + 1), {}, "seq: must be a whole number 0..9007199254740991"),
    ("whole", ("seq", 4611686018427387905), {}, "seq: must be a whole number"),   # 2**62 + 1
    ("whole", ("seq", 9223372036854775808), {}, "seq: must be a whole number"),   # 2**63
    ("whole", ("seq", -1), {}, "seq: must be a whole number"),
    ("whole", ("seq", True), {}, "seq: must be a whole number"),
    ("whole", ("seq", 1.0), {}, "seq: must be a whole number"),
    ("whole", ("seq", "1"), {}, "seq: must be a whole number"),
    ("whole", ("seq", 0), {"lo": 1}, "seq: must be a whole number 1..9007199254740991"),
    ("whole", ("rssi", -128, -128, 127), {}, None),
    ("whole", ("rssi", 128, -128, 127), {}, "rssi: must be a whole number -128..127"),
    ("timestamp", ("ts", 253402214400), {}, None),
    ("timestamp", ("ts", 253402214401), {}, "ts: must be a whole number 0..253402214400"),
    ("flag", ("online", True), {}, None),
    ("flag", ("online", 1), {}, "online: must be true or false"),
    ("ident", ("window", "W-01_a"), {}, None),
    ("ident", ("window", "W" * 32), {}, None),
    ("ident", ("window", "W" * 33), {}, "window: must be 1-32 of"),
    ("ident", ("window", ""), {}, "window: must be 1-32 of"),
    ("ident", ("staff", ""), {"empty": True}, None),
    ("ident", ("staff", "S|01"), {"empty": True}, "staff: must be 1-32 of"),
    ("ident", ("window", "W\x00"), {}, "window: must be 1-32 of"),
    ("ident", ("window", None), {}, "window: must be 1-32 of"),
    ("text", ("ticket", "A017", 64, 1), {}, None),
    ("text", ("ticket", "办件２０２４-甲", 64, 1), {}, None),
    ("text", ("ticket", "A\u00a0B", 64, 1), {}, None),   # no-break space: printable
    ("text", ("ticket", "", 64, 1), {}, "ticket: must be 1 to 64 characters"),
    ("text", ("ticket", "x" * 65, 64, 1), {}, "ticket: must be 1 to 64 characters"),
    ("text", ("item", "x" * 65, 64), {}, "item: must be at most 64 characters"),
    ("text", ("ticket", "A\x00B", 64, 1), {},
     "ticket: must not contain a control character (U+0000 at character 2)"),
    ("text", ("ticket", "A\tB", 64, 1), {},
     "ticket: must not contain a control character (U+0009"),
    ("text", ("ticket", "A\nB", 64, 1), {},
     "ticket: must not contain a control character (U+000A"),
    ("text", ("ticket", "A\x7f", 64, 1), {},
     "ticket: must not contain a control character (U+007F"),
    ("text", ("ticket", "A\x85", 64, 1), {},
     "ticket: must not contain a control character (U+0085"),
    ("text", ("ticket", SURROGATE, 64, 1), {},
     "ticket: must not contain a lone surrogate (U+D800 at character 2)"),
    ("text", ("ticket", "A017\u202e", 64, 1), {},
     "ticket: must not contain an invisible or direction-changing character (U+202E at"),
    ("text", ("ticket", "A\u200b017", 64, 1), {},
     "ticket: must not contain an invisible or direction-changing character (U+200B at"),
    ("text", ("ticket", "\ufeffA017", 64, 1), {}, "ticket: must not contain an invisible"),
    ("text", ("note", "a\u2067b", 64), {"lines": True}, "note: must not contain an invisible"),
    ("text", ("ticket", 17, 64, 1), {}, "ticket: must be text"),
    ("text", ("note", "a\tb\r\nc", 64), {"lines": True}, None),
    ("text", ("note", "a\x00b", 64), {"lines": True}, "note: must not contain a control character"),
    ("text", ("note", "a" + SURROGATE, 64), {"lines": True}, "note: must not contain a lone"),
    ("choice", ("reason", "attitude", ("efficiency", "attitude")), {}, None),
    ("choice", ("reason", "rude", ("efficiency", "attitude")), {},
     "reason: must be one of efficiency, attitude"),
    ("choice", ("reason", ["attitude"], ("efficiency", "attitude")), {}, "reason: must be one of"),
    ("hex_text", ("sig", "0f" * 32, 64), {}, None),
    ("hex_text", ("sig", "0F" * 32, 64), {}, "sig: must be 64 lowercase hex digits"),
    ("hex_text", ("sig", "0f" * 31, 64), {}, "sig: must be 64 lowercase hex digits"),
    ("hex_text", ("sig", "\x00" * 64, 64), {}, "sig: must be 64 lowercase hex digits"),
    ("hex_text", ("token", "", 32), {"empty": True}, None),
    ("hex_text", ("token", "", 32), {}, "token: must be 32 lowercase hex digits"),
]


def check():
    failures = []
    n = 0
    for name, args, kw, want in CASES:
        n += 1
        try:
            got = getattr(fields, name)(*args, **kw)
            err = None
        except ValueError as e:
            err = str(e)
        if want is None and err is not None:
            failures.append("%s%r refused: %s" % (name, args, err))
        elif want is not None and (err is None or not err.startswith(want)):
            failures.append("%s%r: want %r, got %r" % (name, args, want, err))
        elif want is None and got is not args[1]:
            failures.append("%s%r returned another value" % (name, args))
    # what a terminal reports about itself is cleaned rather than refused
    n += 1
    if fields.clean("a\x00b" + SURROGATE + "\x1b", 40) != "a?bA??":
        failures.append("clean: got %r" % fields.clean("a\x00b" + SURROGATE + "\x1b", 40))
    n += 1
    if fields.clean("é" * 50, 40) != "é" * 40:
        failures.append("clean does not cut at 40 characters")
    return n, failures


if __name__ == "__main__":
    n, failures = check()
    for f in failures:
        print(f)
    print("fields %s %d" % ("FAILED" if failures else "ok", n))
