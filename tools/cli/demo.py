"""hcp simulate / hcp demo: simulated terminals and a scripted hall day."""
import os
import shutil

import click

from haochaping.daemon import config, db, report
from haochaping.daemon.errors import HcpError

from . import cli


@cli.command()
@click.option("--config", "config_path", default="hall.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The hall's configuration file.")
@click.option("--terminals", "count", type=click.IntRange(1), default=None,
              help="How many of the hall's terminals to simulate (default: all).")
@click.option("--ratings", "transactions", type=click.IntRange(1), default=20, show_default=True,
              help="How many citizens to serve, spread over the windows.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed of the day.")
def simulate(config_path, count, transactions, seed):
    """Simulated terminals and citizens against a running hall daemon.

    Terminal credentials are read from terminals/*.json next to hall.toml (as `hcp demo` and
    provisioning write them). Each window calls tickets over the daemon's HTTP API; citizens
    rate on the window's terminal (some walk away, some press twice).

    \b
    Example:
      hcp simulate --config demo-hall/hall.toml --terminals 3 --ratings 30
    """
    from haochaping.tools import scenario
    cfg = config.load(config_path)
    folder = os.path.dirname(cfg["path"])
    if not os.path.isdir(os.path.join(folder, "terminals")):
        raise HcpError("no terminals/ folder next to %s: provision terminals first" % config_path)
    by_window = scenario.start_terminals(cfg, folder, count)
    try:
        did, errors = _day(scenario, cfg, by_window, transactions, seed)
    finally:
        scenario.stop(by_window)
    _print_results(cfg, did, errors)


def _day(scenario, cfg, by_window, transactions, seed):
    with click.progressbar(length=transactions, label="citizens served") as bar:
        state = {"n": 0}

        def progress(done):
            bar.update(done - state["n"])
            state["n"] = done
        did, errors = scenario.run(cfg, by_window, transactions, seed, progress)
    left = scenario.drain(by_window)
    if left:
        errors.append("%d rating(s) still waiting for the daemon's ack" % left)
    return did, errors


def _print_results(cfg, did, errors):
    click.echo("citizens: %s" % ", ".join("%d %s" % (v, k) for k, v in did.items()))
    for e in errors:
        click.echo("problem: %s" % e, err=True)
    conn = db.connect(cfg["hall"]["database"])
    click.echo()
    click.echo(report.format_summary(report.window_summary(conn)))
    oc = report.outcome_counts(conn)
    click.echo("\nratings by outcome: %s" % ", ".join("%s %d" % kv for kv in sorted(oc.items())))
    conn.close()


@cli.command()
@click.option("--dir", "folder", default="demo-hall", show_default=True,
              type=click.Path(file_okay=False), help="Where the demo hall lives (recreated).")
@click.option("--windows", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--ratings", "transactions", type=click.IntRange(1), default=30, show_default=True,
              help="How many citizens to serve.")
@click.option("--seed", type=int, default=1, show_default=True)
def demo(folder, windows, transactions, seed):
    """Run a whole hall on this machine: broker, daemon, terminals, window system, citizens.

    Starts its own mosquitto (own config, free port, per-terminal passwords and ACL) and the
    hall daemon on its own SQLite file, serves the citizens, prints what was counted per
    window, and stops everything it started.

    \b
    Example:
      hcp demo --windows 3 --ratings 30
    """
    from haochaping.tools import broker, hallkit, scenario
    folder = os.path.abspath(folder)
    if os.path.exists(folder):
        if not os.path.exists(os.path.join(folder, "hall.toml")):
            raise HcpError("%s exists and is not a demo hall; choose another --dir" % folder)
        shutil.rmtree(folder)
    ids = tuple("W%02d" % (i + 1) for i in range(windows))
    cfg = hallkit.create(folder, windows=ids)
    click.echo("hall H01 in %s: %d windows, %d terminals" % (folder, windows, windows))
    b = broker.Mosquitto(cfg["broker_conf"], cfg["mqtt"]["port"]).start()
    click.echo("mosquitto on 127.0.0.1:%d (config %s)" % (cfg["mqtt"]["port"], cfg["broker_conf"]))
    d = by_window = None
    try:
        d = hallkit.DaemonProcess(cfg).start()
        click.echo("hall daemon running (log %s), window API on %s" % (d.log_path, cfg["api"]["listen"]))
        by_window = scenario.start_terminals(cfg, folder)
        did, errors = _day(scenario, cfg, by_window, transactions, seed)
    finally:
        if by_window:
            scenario.stop(by_window)
        if d:
            d.terminate()
        b.stop()
    click.echo("stopped the daemon and mosquitto")
    _print_results(cfg, did, errors)
    dbp = cfg["hall"]["database"]
    click.echo("\nThe hall database is %s. Browse it with:" % dbp)
    click.echo("  .venv/bin/sqlite-utils tables %s --counts" % dbp)
    click.echo("  .venv/bin/sqlite-utils rows %s ratings --limit 5" % dbp)
    click.echo("  datasette %s   (pip install datasette)" % dbp)
    if errors:
        raise HcpError("the demo saw %d problem(s), listed above" % len(errors))
