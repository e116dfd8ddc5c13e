"""hcp simulate / hcp demo: simulated terminals running the firmware, and a scripted hall day."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import click

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, registry, settings, summary
from haochaping.daemon.hall.settings import HallConfig
from haochaping.protocol import levels
from haochaping.tools.cli import cli
from haochaping.tools.cli.hcp_hall import terminal

if TYPE_CHECKING:
    from haochaping.tools.sim.firmware_host import FirmwareTerminal
    from haochaping.tools.sim.processes import DaemonProcess

# the simulated terminals of each window: {window: [terminal]}
ByWindow = dict[str, list["FirmwareTerminal"]]

_RUNTIME = click.option(
    "--runtime", type=click.Choice(["auto", "micropython", "cpython"]), default="auto",
    show_default=True, help="Run the firmware under MicroPython's unix port (auto: when the"
    " `micropython` command is installed) or CPython.")
_SCALE = click.option(
    "--time-scale", "scale", type=click.IntRange(1, 100), default=10, show_default=True,
    help="Divide the terminals' waiting times (3 s correction window, 10 s reason window ...)"
    " so the day runs faster; 1 = real time.")


def _start(cfg: HallConfig, folder: str, count: int | None, runtime: str,
           scale: int) -> ByWindow:
    from haochaping.tools.sim import scenario
    # engine="firmware": every terminal is a FirmwareTerminal
    by_window = cast(ByWindow, scenario.start_terminals(
        cfg, folder, count, engine="firmware", scale=scale,
        runtime=None if runtime == "auto" else runtime))
    host = next(iter(by_window.values()))[0].host
    assert host.proc is not None  # started by start_terminals
    click.echo("%d simulated terminal(s) running the firmware under %s in one process"
               " (pid %d), times / %d" % (sum(len(v) for v in by_window.values()), host.runtime,
                                          host.proc.pid, scale))
    return by_window


@cli.command()
@click.option("--config", "config_path", default="hall.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The hall's configuration file.")
@click.option("--terminals", "count", type=click.IntRange(1), default=None,
              help="How many of the hall's terminals to simulate (default: all).")
@click.option("--ratings", "transactions", type=click.IntRange(1), default=20, show_default=True,
              help="How many citizens to serve, spread over the windows.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed of the day.")
@_RUNTIME
@_SCALE
def simulate(config_path: str, count: int | None, transactions: int, seed: int, runtime: str,
             scale: int) -> None:
    """Simulated terminals running the firmware, and citizens, against a running hall daemon.

    Every terminal runs the terminal firmware (firmware/: keys, journal, MQTT link), all in one
    MicroPython process (CPython if `micropython` is not installed), with stand-ins for the
    board and WiFi. Terminal credentials are read from terminals/*.json next to hall.toml (as
    `hcp demo` and provisioning write them); their journals are kept in sim/flash/. Each window
    calls tickets over the daemon's HTTP API; citizens rate on the window's terminal (some walk
    away, some change their mind within the correction window, some press again during the
    thank-you, which the terminal ignores, some give a reason after a bad review).

    \b
    Example:
      hcp simulate --config demo-hall/hall.toml --terminals 3 --ratings 30
    """
    from haochaping.daemon.hall.api_client import WindowApi
    from haochaping.tools.sim import keypad, scenario
    cfg = settings.load(config_path)
    folder = os.path.dirname(cfg.path)
    if not os.path.isdir(os.path.join(folder, "terminals")):
        raise HcpError("no terminals/ folder next to %s: provision terminals first" % config_path)
    if keypad.running(folder):
        raise HcpError("a kept `hcp demo` runs this hall's terminals: play the citizen there"
                       " with `hcp terminal press --config %s ...`" % config_path)
    api = WindowApi(cfg)
    conn = db.connect(cfg.hall.database)
    busy = {w: st for w in registry_windows(conn)
            if (st := api.state(w))["state"] in ("serving", "prompting")}
    since_tx, since = summary.last_transaction(conn), time.time()
    conn.close()
    by_window = _start(cfg, folder, count, runtime, scale)
    for w, st in sorted(busy.items()):
        click.echo("window %s is %s ticket %s: left to its staff" % (
            w, "serving" if st["state"] == "serving" else "asking a rating for", st["ticket"]))
    try:
        mine = {w: ts for w, ts in by_window.items() if w not in busy}
        if not mine:
            raise HcpError("every window is busy with its staff's tickets: nothing to simulate")
        did, errors, confirmed = _day(cfg, mine, transactions, seed)
    finally:
        scenario.stop(by_window)
    _print_results(cfg, did, errors, confirmed, since_tx, since)
    if errors:
        raise HcpError("the simulation saw %d problem(s), listed above" % len(errors))


def registry_windows(conn: sqlite3.Connection) -> list[str]:
    return sorted({p["window"] for p in registry.pairings(conn)})


def _day(cfg: HallConfig, by_window: ByWindow, transactions: int,
         seed: int, phone_share: float = 0.0) -> tuple[dict[str, int], list[str], int]:
    """Serve the citizens, wait for the acks, check what the terminals confirmed: (what the
    citizens did, problems, ratings confirmed to citizens)."""
    from haochaping.tools.sim import scenario
    with click.progressbar(length=transactions, label="citizens served") as bar:
        state = {"n": 0}

        def progress(done: int) -> None:
            bar.update(done - state["n"])
            state["n"] = done
        did, errors = scenario.run(cfg, by_window, transactions, seed, progress,
                                   phone_share=phone_share)
    left = scenario.drain(by_window)
    if left:
        errors.append("%d rating(s) still waiting for the daemon's ack" % left)
    n, problems = scenario.check_confirmed(cfg, by_window)
    errors += problems
    return did, errors, n


def _print_results(cfg: HallConfig, did: Mapping[str, int], errors: Sequence[str],
                   confirmed: int, since_tx: int = 0, since: float = 0) -> None:
    click.echo("citizens: %s" % ", ".join("%d %s" % (v, k) for k, v in did.items()))
    click.echo("terminals: %d rating(s) confirmed to citizens, %s" % (
        confirmed, "some not stored exactly once (below)" if any(
            "confirmed to the citizen" in e for e in errors)
        else "each in the hall database exactly once"))
    for e in errors:
        click.echo("problem: %s" % e, err=True)
    conn = db.connect(cfg.hall.database)
    click.echo()
    click.echo(summary.format_summary(summary.window_summary(conn, since_tx)))
    oc = summary.outcome_counts(conn, since)
    click.echo("\nratings by outcome: %s" % ", ".join("%s %d" % kv for kv in sorted(oc.items())))
    ch = dict(conn.execute("SELECT channel, COUNT(*) FROM ratings WHERE received_at >= ?"
                           " GROUP BY channel", (since,)).fetchall())
    click.echo("ratings by channel: 评价器 %d, 二维码 (phone) %d" % (ch.get("PJQ", 0),
                                                                 ch.get("QR", 0)))
    conn.close()


def _demo_keypad_on(cfg: HallConfig) -> HallConfig:
    """[console] demo_keypad = true in the demo's hall.toml: the console shows the keypad panel."""
    with open(cfg.path, encoding="utf-8") as f:
        text = f.read()
    if "\n[console]\n" in text:
        text = text.replace("\n[console]\n", "\n[console]\ndemo_keypad = true\n", 1)
    else:
        text += "\n[console]\ndemo_keypad = true\n"
    with open(cfg.path, "w", encoding="utf-8") as f:
        f.write(text)
    return settings.load(cfg.path)


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM, whatever stdin and stdout are (a pipe, a file, none)."""
    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)


@cli.command()
@click.option("--dir", "folder", default="demo-hall", show_default=True,
              type=click.Path(file_okay=False), help="Where the demo hall lives (recreated).")
@click.option("--windows", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--ratings", "transactions", type=click.IntRange(1), default=30, show_default=True,
              help="How many citizens to serve.")
@click.option("--seed", type=int, default=1, show_default=True)
@_RUNTIME
@_SCALE
@click.option("--keep", is_flag=True,
              help="Keep the hall running after the day, to look at the console pages, until"
                   " Ctrl-C or SIGTERM.")
def demo(folder: str, windows: int, transactions: int, seed: int, runtime: str, scale: int,
         keep: bool) -> None:
    """Run a whole hall on this machine: broker, daemon, terminals, window system, citizens.

    Starts its own mosquitto (own config, free port, per-terminal passwords and ACL) and the
    hall daemon on its own SQLite file, one process running the terminal firmware for every
    window (MicroPython if installed, else CPython), serves the citizens, checks that every
    rating a terminal confirmed is in the hall database once, prints what was counted per
    window, and stops everything it started.

    \b
    Example:
      hcp demo --windows 3 --ratings 30
      hcp demo --runtime cpython --time-scale 1 --ratings 6
      hcp demo --keep     # then open the staff and manager pages it prints
    """
    from haochaping.tools.sim import hall_kit, processes, scenario
    folder = os.path.abspath(folder)
    if os.path.exists(folder):
        if not os.path.exists(os.path.join(folder, "hall.toml")):
            raise HcpError("%s exists and is not a demo hall; choose another --dir" % folder)
        shutil.rmtree(folder)
    ids = tuple("W%02d" % (i + 1) for i in range(windows))
    cfg = hall_kit.create(folder, windows=ids, mobile=True)
    if keep:  # the index page's "simulated terminal" panel, through the keypad served below
        cfg = _demo_keypad_on(cfg)
    click.echo("hall H01 in %s: %d windows, %d terminals" % (folder, windows, windows))
    b = processes.Mosquitto(hall_kit.broker_conf(cfg), cfg.mqtt.port).start()
    click.echo("mosquitto on 127.0.0.1:%d (config %s)" % (cfg.mqtt.port, hall_kit.broker_conf(cfg)))
    d: DaemonProcess | None = None
    by_window: ByWindow | None = None
    try:
        d = processes.DaemonProcess(cfg).start()
        click.echo("hall daemon running (log %s), window API on %s, phone page (评价二维码) on %s"
                   % (d.log_path, cfg.api.listen, cfg.mobile.listen))
        from haochaping.daemon.hall.console.staff import demo_accounts
        conn = db.connect(cfg.hall.database)
        console = demo_accounts(conn, ids, "http://" + cfg.api.listen)
        conn.close()
        for line in console:
            click.echo(line)
        by_window = _start(cfg, folder, None, runtime, scale)
        did, errors, confirmed = _day(cfg, by_window, transactions, seed, phone_share=0.15)
        if keep:
            from haochaping.tools.sim.keypad import KeypadServer
            keypad = KeypadServer(folder, {t.terminal: t for ts in by_window.values()
                                           for t in ts}).start()
            click.echo("\nThe hall keeps running; open the console pages above in a browser.")
            for line in console:
                click.echo("  " + line)
            click.echo("Play the citizen on a terminal (levels 1 非常满意 … 5 非常不满意):")
            click.echo("  hcp terminal press --config %s --terminal T001 --level 4"
                       " --reason attitude" % cfg.path)
            click.echo("Stop everything with Ctrl-C (or SIGTERM, as a service manager does).")
            try:
                _wait_for_stop()
            finally:
                keypad.stop()
    finally:
        if by_window:
            scenario.stop(by_window)
        if d:
            d.terminate()
        b.stop()
    click.echo("stopped the daemon and mosquitto")
    _print_results(cfg, did, errors, confirmed)
    dbp = cfg.hall.database
    click.echo("\nThe hall database is %s. Browse it with:" % dbp)
    click.echo("  .venv/bin/sqlite-utils tables %s --counts" % dbp)
    click.echo("  .venv/bin/sqlite-utils rows %s ratings --limit 5" % dbp)
    click.echo("  datasette %s   (pip install datasette)" % dbp)
    if errors:
        raise HcpError("the demo saw %d problem(s), listed above" % len(errors))


@terminal.command("press")
@click.option("--config", "config_path", default="hall.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The kept demo's hall.toml.")
@click.option("--terminal", "terminal_id", required=True, help="A simulated terminal, e.g. T001.")
@click.option("--level", type=click.IntRange(1, 5), required=True,
              help="The key: 1 非常满意, 2 满意, 3 基本满意, 4 不满意, 5 非常不满意.")
@click.option("--reason", type=click.Choice([r for r, _ in levels.REASONS]),
              help="After 不满意 or 非常不满意: the reason key the citizen presses.")
def terminal_press(config_path: str, terminal_id: str, level: int, reason: str | None) -> None:
    """Press a simulated terminal's keys as a citizen would (a kept `hcp demo` only).

    Answers once the terminal has confirmed the rating (and stored the reason).

    \b
    Example:
      hcp terminal press --config demo-hall/hall.toml --terminal T001 --level 4 --reason attitude
    """
    from haochaping.tools.sim import keypad
    cfg = settings.load(config_path)
    r = keypad.press(os.path.dirname(cfg.path), terminal_id, level, reason)
    click.echo("%s: %s confirmed (seq %d)%s" % (
        terminal_id, levels.name(level), r["seq"],
        "; reason %s stored (seq %d)" % (reason, r["reason_seq"]) if r.get("reason_seq")
        else "; the reason keys went dark before the reason was pressed" if reason else ""))
