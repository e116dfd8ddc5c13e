"""The PIN limiter's counting when sign-ins overlap (daemon/hall/console/sessions.py)."""
from haochaping.daemon.hall.console.sessions import PinLimiter


def test_guesses_racing_the_right_pin_stay_counted():
    # if this fails, an attacker who sends guesses alongside a staff member's own sign-in gets
    # the guesses back for free when the staff member's right PIN clears the count
    lim = PinLimiter(lockout_s=300, clock=lambda: 1000.0)
    keys = {"number:S0101": 5}
    for _ in range(5):
        assert lim.attempt(keys) == 0       # five sign-ins being checked at once
    assert lim.attempt(keys) > 0             # a sixth: locked at once
    lim.finished(keys, ok=True)             # the staff member's right PIN
    assert lim.attempt(keys) == 0           # four guesses still counted: one more may try
    assert lim.attempt(keys) > 0


def test_a_right_pin_after_a_few_typos_clears_them():
    # if this fails, a staff member who mistyped four times is locked out by the next typo,
    # days after signing in successfully
    lim = PinLimiter(lockout_s=300, clock=lambda: 1000.0)
    keys = {"number:S0101": 5}
    for _ in range(4):
        assert lim.attempt(keys) == 0
        lim.finished(keys, ok=False)
    assert lim.attempt(keys) == 0
    lim.finished(keys, ok=True)
    for _ in range(5):
        assert lim.attempt(keys) == 0
        lim.finished(keys, ok=False)
    assert lim.attempt(keys) > 0
