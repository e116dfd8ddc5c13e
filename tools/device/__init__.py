"""Hall IT tools for terminals: flash a MicroPython image (esptool), install the device files
(mpy-cross, mpremote), provision a terminal (key, broker password, config), and the hall side of
it (registering, pairing, replacing and watching terminals, with an audit entry for each change).
"""
