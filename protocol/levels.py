"""The five rating levels and the bad-review reasons (RULES.md 第七条, 第十四条)."""

# code, 中文 name, points, bad review (差评)
LEVELS = (
    (1, "非常满意", 10, False),
    (2, "满意", 8, False),
    (3, "基本满意", 6, False),
    (4, "不满意", 2, True),
    (5, "非常不满意", 0, True),
)

# The reason categories a terminal may ask for after a bad review (national offline indicators).
REASONS = (
    ("efficiency", "服务效率"),
    ("competence", "服务水平"),
    ("attitude", "服务态度"),
    ("other", "其他"),
)

DEFAULT_LEVEL = 3  # 基本满意, given when a transaction is not rated in time (第七条)


def is_level(code):
    return type(code) is int and 1 <= code <= len(LEVELS)


def name(code):
    return LEVELS[code - 1][1]


def points(code):
    return LEVELS[code - 1][2]


def is_bad(code):
    return LEVELS[code - 1][3]


def is_reason(code):
    return any(r[0] == code for r in REASONS)
