"""Time on the terminal: `time.ticks_ms` instants, `ticks_diff` intervals, `ticks_add` deadlines,
with their CPython stand-ins here and nowhere else (`hcp simulate` and the host tests run the
firmware on CPython, whose `time` lacks them). Pure: no hardware, no asyncio (the waits,
`asyncio.sleep_ms` and its CPython stand-in, are in link.py, the firmware's asyncio module).

A ticks value wraps (at 2**30 ms on the ESP32, about 12 days), so it is always a small int: an
int over 2**30 would be a heap object on a 32-bit ESP32, allocated 100 times a second by the key
loop. Compare ticks only with `ticks_diff`, which is right for intervals shorter than half the
wrap (about 6 days); compute a deadline once, with `ticks_add`.
"""
try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: monotonic milliseconds that do not wrap
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]

    def ticks_add(ticks, delta):  # type: ignore[misc]
        return ticks + delta

    def ticks_diff(new, old):  # type: ignore[no-redef]
        return new - old
