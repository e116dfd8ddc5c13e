# Stand-in for the `neopixel` module (WS2812), for the unix port of MicroPython.
class NeoPixel:
    def __init__(self, pin, n, bpp=3, timing=1):
        self.pin = pin
        self.n = n
        self.buf = [(0, 0, 0)] * n
        self.shown = list(self.buf)
        self.writes = 0

    def __len__(self):
        return self.n

    def __setitem__(self, i, v):
        self.buf[i] = v

    def __getitem__(self, i):
        return self.buf[i]

    def fill(self, v):
        self.buf = [v] * self.n

    def write(self):
        self.shown = list(self.buf)
        self.writes += 1
