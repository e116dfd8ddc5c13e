"""MQTT topic names: hcp/v1/<hall>/<terminal>/<kind>."""
from . import fields

PREFIX = "hcp/v1"
# terminal -> daemon
RATING = "rating"   # QoS 1: ratings and bad-review reasons, signed
STATUS = "status"   # retained, last will says offline
# daemon -> terminal
ACK = "ack"         # signed list of sequence numbers stored durably
SESSION = "session" # retained: the open rating prompt, or empty when none
CONFIG = "config"   # retained: settings pushed to the terminal
# over-the-air updates (protocol/ota.py)
UPDATE = "update"   # daemon -> terminal, retained: the update offered, or empty
FETCH = "fetch"     # terminal -> daemon: "send me these bytes of the bundle"
CHUNK = "chunk"     # daemon -> terminal: those bytes

KINDS = (RATING, STATUS, ACK, SESSION, CONFIG, UPDATE, FETCH, CHUNK)

# Hall, terminal and window ids: 1-32 of [A-Za-z0-9_-] (safe in topics and signatures); the
# rule lives with the others in fields.py.
valid_id = fields.is_id


def topic(hall, terminal, kind):
    return PREFIX + "/" + hall + "/" + terminal + "/" + kind


def alerts(hall):
    """Bad-review alerts for the duty manager (daemon -> hall, not retained)."""
    return PREFIX + "/" + hall + "/alerts"


def wildcard(hall, kind):
    return PREFIX + "/" + hall + "/+/" + kind


def parse(t):
    """Return (hall, terminal, kind), or None for a topic that is not ours."""
    parts = t.split("/")
    if len(parts) != 5 or parts[0] + "/" + parts[1] != PREFIX:
        return None
    if not valid_id(parts[2]) or not valid_id(parts[3]) or parts[4] not in KINDS:
        return None
    return (parts[2], parts[3], parts[4])
