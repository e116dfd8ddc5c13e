"""Every text the pages show comes from one labels file per language, complete and in step
with the protocol's levels and reasons."""
import os
import re

from haochaping.daemon.hall.console import web
from haochaping.protocol import levels

HERE = os.path.dirname(web.__file__)


def _read(*parts):
    with open(os.path.join(HERE, *parts), encoding="utf-8") as f:
        return f.read()


def test_level_and_reason_names_match_the_protocol():
    # if this fails, a page shows a level name the terminal and the reports do not use
    L = web.load_labels("zh-CN")
    assert L["levels"] == {str(c): n for c, n, _, _ in levels.LEVELS}
    assert L["reasons"] == dict(levels.REASONS)


def test_every_label_the_pages_use_exists():
    # if this fails, a page shows "undefined" or a raw $L_ placeholder instead of Chinese text
    L = web.load_labels("zh-CN")
    missing = []
    for name in ("common.js", "window.js", "hall.js"):
        js = _read("static", name)
        for key in set(re.findall(r"\bL\.(\w+)", js)):
            if key not in L:
                missing.append("%s: L.%s" % (name, key))
        for key in set(re.findall(r"L\.show(?:_short)?\[|error_code: \"([\w-]+)\"", js)) - {""}:
            if key not in L["errors"]:
                missing.append("%s: errors.%s" % (name, key))
    for name in os.listdir(os.path.join(HERE, "templates")):
        page = _read("templates", name)
        for key in set(re.findall(r"\bL\.(\w+)", page)):
            if key not in L:
                missing.append("%s: L.%s" % (name, key))
        missing.extend("%s: %s" % (name, raw) for raw in set(re.findall(r"\$L_\w+", page)))
    for code in set(re.findall(r'Refused\(\d+, "([\w-]+)"', _read("web.py"))):
        if code not in L["errors"]:
            missing.append("web.py: errors.%s" % code)
    for show in ("waiting", "serving", "prompt", "rated", "not-rated", "offline"):
        if show not in L["show"] or show not in L["show_short"]:
            missing.append("show.%s" % show)
    assert missing == []
