"""The boot shim: finishes an interrupted switch or rollback of an over-the-air update, counts the
boots of a version on trial, then starts the app. On the terminal it is /lib/hcpboot.mpy, put
there by `hcp device install` (USB) and NEVER by an update, and /main.py is two lines:

    import hcpboot
    hcpboot.run()

It imports nothing of the app until the app's folder is whole, so a broken update cannot stop
it. The app is /lib/haochaping (protocol/, firmware/ and, when it came over the air,
manifest.json). An update is staged in /next/haochaping (firmware/update.py); the state of an
update is one line in /update.state, always replaced whole (written as .new, then renamed):

    switch <V>          the staged V is complete: move /lib -> /prev, /next -> /lib, then trial
    trial <V> <n>       V runs on trial; n boots so far. Past MAX_TRIES (the watchdog reset it,
                        or it crashed) it is rolled back. The app writes `ok` when its self-test
                        passes (config loaded, keys scanned, broker reached, a status published)
    ok <V>              V is kept
    rollback <V> <why>  move /lib -> /bad, /prev -> /lib, then `failed`
    failed <V> <why>    V was rolled back; the app says so in its status and does not take V again

Every step looks at which folders exist, so a power cut at any point, and any number of them,
ends with either the old or the new app whole in /lib: littlefs renames atomically.

An update of MicroPython itself (the image, firmware/image.py) keeps its state in
/image.state, the same kind of line. The bootloader, not this shim, switches and rolls back
images; the shim only makes sure that a new image on trial whose app does not even start
resets at once (the bootloader then boots the old image).
"""
import os

STATE = "/update.state"
IMAGE_STATE = "/image.state"
LIB = "/lib/haochaping"
NEXT = "/next/haochaping"
PREV = "/prev/haochaping"
BAD = "/bad/haochaping"
MANIFEST = "/manifest.json"
MAX_TRIES = 3


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def is_dir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def mkdirs(p):
    """Make folder p and its parents (absolute path)."""
    at = ""
    for part in p.split("/")[1:]:
        at += "/" + part
        if not is_dir(at):
            os.mkdir(at)


def rmtree(p):
    """Remove p and everything under it; what is already gone is fine (a rerun after a cut)."""
    if not exists(p):
        return
    if is_dir(p):
        for name in os.listdir(p):
            rmtree(p + "/" + name)
        os.rmdir(p)
    else:
        os.remove(p)


def read(root="", path=STATE):
    """[state, version, detail] or [] when no update ever ran (or the line is unreadable).
    The line alone in .new is whole: write() removes the old one only after .new is closed
    (on FAT, which cannot rename over a file)."""
    words = []
    for p in (root + path, root + path + ".new"):
        try:
            with open(p) as f:
                text = f.read()
        except OSError:
            continue
        if text.endswith("\n"):   # a line cut short (FAT) is not a line
            words = text.strip().split(" ", 2)
            break
    if len(words) < 2:
        return []
    if len(words) == 2:
        words.append("")
    return words


def write(root, state, ver, detail="", path=STATE):
    """Replace the state line whole: a cut leaves the old line or the new one."""
    p = root + path
    with open(p + ".new", "w") as f:
        f.write("%s %s %s\n" % (state, ver, detail))
    try:
        os.rename(p + ".new", p)    # littlefs replaces the old line atomically
    except OSError:
        os.remove(p)                # FAT cannot rename over a file: read() takes .new alone
        os.rename(p + ".new", p)


def _switch(root):
    """Make the staged app the app. Each step is done only if it is still to do."""
    lib, nxt, prev = root + LIB, root + NEXT, root + PREV
    if is_dir(nxt):
        if is_dir(lib):
            rmtree(prev)        # the app before the last one, or a half-removed one
            mkdirs(root + "/prev")
            os.rename(lib, prev)
        os.rename(nxt, lib)


def _rollback(root):
    lib, prev, bad = root + LIB, root + PREV, root + BAD
    if is_dir(prev):
        if is_dir(lib):
            rmtree(bad)
            mkdirs(root + "/bad")
            os.rename(lib, bad)
        os.rename(prev, lib)


def recover(root=""):
    """Finish whatever an update left half done; count this boot of a version on trial.
    Return the state line as it is now (see read)."""
    st = read(root)
    if not st:
        return st
    s, ver = st[0], st[1]
    if s == "switch":
        if is_dir(root + NEXT) and not exists(root + NEXT + MANIFEST):
            write(root, "failed", ver, "staged files incomplete")
            return read(root)
        _switch(root)
        write(root, "trial", ver, "0")
        st = read(root)
        s = "trial"
    if s == "trial":
        try:
            n = int(st[2]) + 1
        except ValueError:
            n = MAX_TRIES + 1
        if n > MAX_TRIES:
            write(root, "rollback", ver, "no self-test after %d boots (crash or watchdog)"
                  % MAX_TRIES)
            s = "rollback"
        else:
            write(root, "trial", ver, str(n))
            return read(root)
    if s == "rollback":
        why = read(root)[2]
        _rollback(root)
        write(root, "failed", ver, why)
    return read(root)


def failed(root, st, why):
    """The app failed to start or run during its trial: roll back at the next boot.
    Returns True when it was on trial (the caller then resets)."""
    if st and st[0] == "trial":
        write(root, "rollback", st[1], why[:60])
        return True
    return False


def run(root=""):
    """Boot: recover, then run the app; an app on trial that raises is rolled back."""
    st = recover(root)
    try:
        from haochaping.firmware import main
        main.run()
    except Exception as e:  # ImportError, SyntaxError ... of a broken update
        why = "boot: %s %s" % (type(e).__name__, e)
        img = read(root, IMAGE_STATE)
        if img and img[0] in ("switch", "trial"):   # a new image that cannot run the app
            write(root, "rollback", img[1], why[:60], IMAGE_STATE)
            failed(root, st, why)
            import machine
            machine.reset()                          # unconfirmed: the bootloader rolls back
        if failed(root, st, why):
            import machine
            machine.reset()
        raise
