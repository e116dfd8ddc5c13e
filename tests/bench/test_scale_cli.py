"""`hcp bench scale --only`: the groups of steps the CLI takes are the bench's."""
import os

from click.testing import CliRunner

from haochaping.daemon.store import backends
from haochaping.tools.bench import scale_rate
from haochaping.tools.cli import _register, cli, hcp_bench_scale

_register()


def test_only_takes_the_benchs_groups_and_refuses_others():
    # if this fails, `hcp bench scale --only …` refuses a group the bench measures, or accepts
    # a misspelt one and measures nothing of it after a long generation
    assert hcp_bench_scale.GROUPS == scale_rate.GROUPS
    r = CliRunner().invoke(cli, ["bench", "scale", "--ratings", "1000", "--only", "explains"])
    assert r.exit_code == 2 and "--only" in r.output and "Traceback" not in r.output


def test_measure_runs_only_the_groups_asked(tmp_path):
    # if this fails, `--only explain` at 20 million still runs the quarter's report (hours)
    st = backends.open_store(os.path.join(tmp_path, "s.sqlite"))
    try:
        steps = scale_rate.measure(st, scale_rate.generate(st, 3000), ("explain", "lookups"))
    finally:
        st.close()
    kinds = ("department", "window", "staff")
    assert {k for k in steps if k.startswith("explain_")} == {
        "explain_%s%s" % (k, live) for k in kinds for live in ("", "_from_transactions")}
    assert not {"ingest_batch_5000", "defaults_sweep", "quarterly_report"} & set(steps)
    assert steps["explain_department"]["rows"] > 0
    # the explanations with October and November kept are those from every transaction
    assert steps["unit_months_build"]["note"] == "months kept: 2025-07, 2025-08, 2025-09," \
        " 2025-10, 2025-11"
    for k in kinds:
        assert steps["explain_" + k]["sha256"] == steps["explain_%s_from_transactions" % k][
            "sha256"]
