"""The wire format shared by the terminal (MicroPython) and the host (CPython).

Common subset only: no dataclasses, no typing at run time, no `match`, no `hmac` module.
"""
