"""hcp bench: measured speed, compared with the raw speed of the same component in the same
run."""
import json
from collections.abc import Callable

import click

from haochaping.tools.cli import cli


@cli.group()
def bench() -> None:
    """Benchmarks that print JSON (figures go in the README, never in tests)."""


@bench.command("ingest")
@click.option("--terminals", type=click.IntRange(1, 5000), default=500, show_default=True)
@click.option("--ratings", type=click.IntRange(100), default=50000, show_default=True,
              help="Ratings sent flat out in each of the raw and daemon phases.")
@click.option("--publishers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Publisher processes.")
@click.option("--paced-rate", type=click.IntRange(1), default=200, show_default=True,
              help="Ratings per second for the latency phase.")
@click.option("--paced-seconds", type=click.IntRange(1), default=10, show_default=True)
@click.option("--sign-in-flood", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Clients sending wrong-PIN sign-ins to the console during the paced phase"
                   " (run a second time, first without them).")
@click.option("--flood-nice", type=click.IntRange(0, 19), default=0, show_default=True,
              help="The flood's client process at this niceness: 19 stands for an attacker"
                   " whose CPU is elsewhere (on this machine the clients take a core's share"
                   " the daemon would otherwise have).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
def bench_ingest(terminals: int, ratings: int, publishers: int, paced_rate: int,
                 paced_seconds: int, sign_in_flood: int, flood_nice: int, as_json: bool) -> None:
    """Daemon ingest rate vs raw paho-mqtt on the same broker, and press -> ack latency.

    Prints one JSON line: raw_msgs_per_s, daemon_ratings_per_s, ratio, p50_ms, p99_ms,
    lost, duplicated, daemon_peak_rss_mb and daemon_http_peak_rss_mb (the daemon's process and
    its HTTP process) (and with --sign-in-flood: sign_in_answers, and no_flood_p50_ms,
    no_flood_p99_ms from the same paced phase without the flood).

    \b
    Example:
      hcp bench ingest --terminals 500 --ratings 50000 --json
      hcp bench ingest --sign-in-flood 100 --json
      hcp bench ingest --sign-in-flood 100 --flood-nice 19 --json
    """
    from haochaping.tools.bench import ingest_rate as b
    say: Callable[[str], None] = ((lambda m: None) if as_json
                                  else (lambda m: click.echo(m, err=True)))
    r = b.ingest(terminals, ratings, publishers, paced_rate, paced_seconds, progress=say,
                 sign_in_flood=sign_in_flood, flood_nice=flood_nice)
    click.echo(json.dumps(r, sort_keys=True))


@bench.command("fuzz")
@click.option("--inputs", type=click.IntRange(1), default=100000, show_default=True,
              help="Malformed and awkward MQTT messages to try.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="The same seed, the same inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
def bench_fuzz(inputs: int, seed: int, as_json: bool) -> None:
    """Malformed input against the hall's ingest on a real SQLite file, vs the raw decoder.

    Prints one JSON line: inputs, rejected, escaped (must be 0), invalid_stored (must be 0),
    decode_per_s (messages.decode_* alone), ingest_per_s (ingest.handle, committed), ratio.

    \b
    Example:
      hcp bench fuzz --inputs 100000 --json
    """
    from haochaping.tools.bench import fuzz_inputs as b
    say: Callable[[str], None] = ((lambda m: None) if as_json
                                  else (lambda m: click.echo(m, err=True)))
    r = b.fuzz(inputs, seed, progress=say)
    click.echo(json.dumps(r, sort_keys=True, ensure_ascii=False))


@bench.command("chaos")
@click.option("--seconds", type=click.FloatRange(5), default=60, show_default=True,
              help="How long faults are injected (then everything is drained and checked).")
@click.option("--backend", type=click.Choice(["sqlite", "postgres"]), default="sqlite",
              show_default=True, help="The store's database.")
@click.option("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
              show_default=True, help="With --backend postgres: where a scratch database is made.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="The same seed, the same order of faults and poison.")
@click.option("--scale", type=click.IntRange(1, 100), default=10, show_default=True,
              help="The terminals' waiting times are divided by this.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
def bench_chaos(seconds: float, backend: str, pg_url: str, seed: int, scale: int,
                as_json: bool) -> None:
    """Kill -9 the daemon, the broker and the store at random while firmware terminals rate and
    poison is sent; then check every confirmed rating reached the store exactly once.

    Prints one JSON line: faults, poison_sent, ratings_confirmed, lost, doubled, rejected,
    quarantined, ok. Exits 1 when anything was lost or doubled or poison got through.

    \b
    Example:
      hcp bench chaos --seconds 300 --backend postgres --json
    """
    from haochaping.tools.bench import chaos as b
    say: Callable[[str], None] = ((lambda m: None) if as_json
                                  else (lambda m: click.echo(m, err=True)))
    r = b.run(seconds, backend, seed, scale, pg_url if backend == "postgres" else None,
              progress=say)
    click.echo(json.dumps(r, sort_keys=True, ensure_ascii=False))
    if not r["ok"]:
        raise SystemExit(1)
