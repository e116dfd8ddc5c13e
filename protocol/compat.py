"""The one place for shims that let device code run on CPython too (hall, simulator, tests).

`const` is MicroPython's compile-time constant: the compiler folds `NAME = const(1)` by the
name `const` wherever it was imported from, and drops `_NAME = const(1)` from the module."""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x
