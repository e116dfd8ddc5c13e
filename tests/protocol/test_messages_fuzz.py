"""Fuzz every decoder in protocol/messages.py (hypothesis): whatever the bytes, a decoder returns
a message whose fields keep the rules, or raises ValueError with a reason; nothing else. If it
raised anything else, the hall would store a message as "internal error" (or a terminal would
stop on it); if it passed a bad field on, the hall would store what the store refuses."""
import pytest
from hypothesis import HealthCheck, given, settings

from tests.protocol import strategies

KEY = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("kind", sorted(strategies.DECODERS))
def test_a_decoder_returns_sound_fields_or_a_reason_whatever_the_bytes(kind):
    decode = strategies.DECODERS[kind]

    @settings(max_examples=600, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(payload=strategies.payloads(kind, KEY))
    def check(payload):
        try:
            msg = decode(KEY, payload)
        except ValueError as e:
            assert str(e)  # a reason in words
            return
        assert msg is None or strategies.sound(kind, msg), msg

    check()
