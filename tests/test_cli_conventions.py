"""Option conventions across every command (docs/cli.md): readable placeholders, one meaning per option
name, the renamed options and their old spellings, and `parse`'s argument checks (issue 12 items 9, 11)."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import boto3
import pytest
import typer
from moto import mock_aws
from typer.main import get_command
from typer.testing import CliRunner

from albstats.cli import app, options

ROOT = Path(__file__).resolve().parents[1]
LOG = sorted((ROOT / "fixtures" / "AWSLogs").rglob("*.log.gz"))[0]
DAY = LOG.parent
runner = CliRunner()

#: Every option name used by more than one command, with the words its help must contain in each of
#: them: the same name means the same thing everywhere. A new shared name must be added here.
MEANINGS = {
    "--output": "write",
    "--format": "format",
    "--quiet": "no progress",
    "--profile": "aws profile",
    "--region": "aws region",
    "--engine": "engine",
    "--since": "window start",
    "--until": "window end",
    "--bucket": "bucket width",
    "--limit": "rows",
    "--param": "parameter",
    "--db": "cache",
    "--no-cache": "temporary dataset",
    "--database": "athena database",
    "--table": "athena table",
    "--workgroup": "athena workgroup",
    "--output-location": "athena results",
    "--slo": "availability slo",
    "--latency-slo": "latency slo",
    "--count-460": "460",
    "--seed": "random seed",
    "--listen": "listen",
    "--upstream": "upstream",
    "--policy": "retry policy",
    "--scenario": "traffic scenario",
    "--tries": "attempts per request",
    "--per-try-timeout": "one attempt",
    "--deadline": "whole request",
    "--retry-budget": "share of requests",
    "--backoff": "backoff",
    "--retry-500": "retry 500",
    "--access-log": "access-log",
    "--workers": "parallel",
    "--strict": "malformed",
    "--dry-run": "print",
    "--slo-file": "yaml",
    "--webhook": "slack-compatible webhook",
    "--now": "utc",
}
#: Short options, and the one long option each stands for everywhere.
SHORT = {"-o": "--output", "-f": "--format", "-q": "--quiet"}
#: A readable placeholder: upper-case words such as PATH, DIR, TIME, PERCENT, DURATION, N, NAME=VALUE,
#: HOST:PORT, [HOST:]PORT, DURATION@PERCENT, optionally repeated (PATH...).
READABLE = re.compile(r"^(?=\[?[A-Z])[A-Z0-9_:=@\[\]]+(?:\.\.\.)?$")
#: What Typer prints when no metavar was given (types), or for a required argument without one.
UNREADABLE = re.compile(r"<(?:str|text|int|float|integer|path|filename|bool|boolean|uuid)(?: range)?>|\{[^}]*\}")


def _commands(group: object, prefix: str = "") -> list[tuple[str, object]]:
    """(name, command) for every command and group, through click's API (the root builds them on demand)."""
    out = []
    ctx = typer.Context(group)  # type: ignore[arg-type]
    for name in group.list_commands(ctx):  # type: ignore[attr-defined]
        cmd = group.get_command(ctx, name)  # type: ignore[attr-defined]
        out.append((f"{prefix}{name}", cmd))
        if hasattr(cmd, "list_commands"):
            out.extend(_commands(cmd, f"{prefix}{name} "))
    return out


COMMANDS = _commands(get_command(app))


def _options(cmd: object) -> list[object]:
    return [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]  # type: ignore[attr-defined]


#: Typer (>= 0.29) shows an argument's value type after its placeholder in the Arguments section
#: (``NAME <str>``, ``PATH... <list[str]>``): the placeholder is still the readable name before it.
ARGUMENT_TYPE = re.compile(r"^(  \S+) <[^>]*>", re.M)


def _placeholder_problem(param: object, ctx: typer.Context) -> str | None:
    if param.param_type_name == "option" and (param.is_flag or param.count):  # type: ignore[attr-defined]
        return None
    if param.param_type_name == "argument":  # the usage line and the help show its metavar (or its name)
        shown = param.metavar or param.name  # type: ignore[attr-defined]
        return None if READABLE.match(shown) else shown
    shown = param.get_help_record(ctx)[0].rsplit(" ", 1)[-1]  # type: ignore[attr-defined]
    choices = param.type_descriptor.choices  # type: ignore[attr-defined]
    if choices is not None:  # Typer lists the choices of a Literal/Enum option: <a|b|c>
        return None if shown == "<" + "|".join(map(str, choices)) + ">" else shown
    return None if READABLE.match(shown) else shown


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_help_has_readable_placeholders(name: str, cmd: object) -> None:
    ctx = typer.Context(cmd)  # type: ignore[arg-type]
    bad = {p.name: _placeholder_problem(p, ctx) for p in cmd.params}  # type: ignore[attr-defined]
    assert {k: v for k, v in bad.items() if v} == {}, f"albstats {name}: placeholders that are not readable"
    res = runner.invoke(app, [*name.split(" "), "--help"], prog_name="albstats")
    assert res.exit_code == 0, res.output
    usage, *sections = res.output.split("\n\n")
    shown = "\n\n".join(ARGUMENT_TYPE.sub(r"\1", s) if s.startswith("Arguments:") else s for s in sections)
    assert not UNREADABLE.search(shown), (name, UNREADABLE.search(shown))
    assert "{" not in usage and "<" not in usage, usage


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_follows_the_conventions_class(name: str, cmd: object) -> None:
    """Deprecated spellings, renamed-option errors and the usage line come from options.Command/Group."""
    if hasattr(cmd, "list_commands"):
        assert not _options(cmd) or isinstance(cmd, options.Group), name
    else:
        assert isinstance(cmd, options.Command), f"albstats {name}: use @app.command(..., cls=options.Command)"


def test_one_meaning_per_option_name() -> None:
    seen: dict[str, list[tuple[str, str]]] = {}
    for name, cmd in COMMANDS:
        for p in _options(cmd):
            long = [o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]  # type: ignore[attr-defined]
            for short in (o for o in p.opts if not o.startswith("--")):  # type: ignore[attr-defined]
                assert SHORT.get(short) in long, f"albstats {name}: {short} is {long}, elsewhere {SHORT.get(short)}"
            for o in long:
                seen.setdefault(o, []).append((name, (p.help or "").lower()))  # type: ignore[attr-defined]
    shared = {o: uses for o, uses in seen.items() if len(uses) > 1}
    assert sorted(set(shared) - set(MEANINGS)) == [], "options shared by several commands need an entry in MEANINGS"
    wrong = [(o, cmd, text) for o, uses in shared.items() for cmd, text in uses if MEANINGS[o] not in text]
    assert wrong == [], "the same option name with another meaning (or a help text that does not say it)"
    for old, (new, meaning) in options.RENAMED.items():  # the renamed-option errors point at options that exist,
        assert set(new) <= set(seen), (old, new)  # and say what the old name means now
        assert old in seen and (old not in MEANINGS or MEANINGS[old] in meaning.lower()), (old, meaning)


# --- renamed options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "old", "new", "where"),
    [
        (["generate", "-o", "GEN", "--profile", "hosp"], "--profile", "--scenario", "generate"),
        (["upstream-sim", "--profile", "hosp"], "--profile", "--scenario", "upstream-sim"),
        (["proxy", "--upstream", "http://127.0.0.1:9", "--profile", "seed"], "--profile", "--policy", "proxy"),
        (["proxy", "nginx-config", "--upstream", "h:1", "--profile=seed"], "--profile", "--policy", "nginx-config"),
        (
            ["athena", "create-table", "--bucket", "b", "--account", "123456789012", "--region", "us-east-2"],
            "--bucket",
            "--s3-bucket",
            "create-table",
        ),
        (
            ["athena", "create-table", "--s3-bucket", "b", "--prefix", "p", "--account", "1", "--region", "r"],
            "--prefix",
            "--s3-prefix",
            "create-table",
        ),
    ],
)
def test_an_old_name_with_a_new_meaning_is_an_error_naming_the_new_option(
    tmp_path: Path, args: list[str], old: str, new: str, where: str
) -> None:
    """Not an alias: `--profile` means the AWS profile now, so an old script fails loudly instead of running
    with its option silently reinterpreted."""
    args = [str(tmp_path / "gen") if a == "GEN" else a for a in args]
    res = runner.invoke(app, args, prog_name="albstats")
    assert res.exit_code == 2, res.output
    meaning = options.RENAMED[old][1]
    assert (
        res.stderr == f"albstats: error: {old} was renamed {new} in `{where}` ({old} is {meaning} elsewhere in "
        "albstats)\n"
    )
    assert not (tmp_path / "gen").exists()


def test_whatif_profile_on_local_logs_points_to_policy() -> None:
    res = runner.invoke(app, ["whatif", str(LOG), "--profile", "seed"], prog_name="albstats")
    assert res.exit_code == 2
    assert res.stderr == (
        "albstats: error: --profile is the AWS profile, for s3:// paths only; the retry policy is --policy\n"
    )


@pytest.mark.integration  # slow: 2 s under load
def test_whatif_policy_changes_the_prediction() -> None:
    outs = {}
    for policy in ("recommended", "seed"):
        res = runner.invoke(app, ["whatif", str(DAY), "--policy", policy, "-f", "json", "--simulations", "2000"])
        assert res.exit_code == 0, res.output
        outs[policy] = res.stdout
    assert '"policy": "seed: ' in outs["seed"] and outs["seed"] != outs["recommended"]


NOTICE = "albstats: warning: --out is deprecated; use -o or --output (same meaning)"


@pytest.mark.parametrize("spelling", ["--out", "--out=", "-o", "--output"])
def test_out_still_works_with_a_notice(tmp_path: Path, spelling: str) -> None:
    out = tmp_path / "out"
    where = [f"{spelling}{out}"] if spelling.endswith("=") else [spelling, str(out)]
    res = runner.invoke(app, ["generate", *where, "--days", "0.01", "--lines", "20", "-q"], prog_name="albstats")
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == ([NOTICE] if spelling.startswith("--out") and spelling != "--output" else [])
    assert any(out.rglob("*.log.gz"))


@pytest.mark.integration  # slow (~3-8 s)
def test_weekly_out_in_a_cron_job_still_works(tmp_path: Path) -> None:
    out = tmp_path / "weekly"
    res = runner.invoke(
        app,
        [
            "weekly",
            str(DAY),
            "--out",
            str(out),
            "--now",
            "2026-11-23T00:00:00Z",
            "-q",
            "--db",
            str(tmp_path / "c.duckdb"),
        ],
        prog_name="albstats",
    )
    assert res.exit_code in (0, 3), res.output  # 3: that week breached the SLO
    assert res.stderr.splitlines()[0] == NOTICE
    assert (out / "2026-W47" / "weekly.json").is_file()


@pytest.mark.integration  # slow (~3-8 s)
def test_the_readme_main_command_in_its_old_spelling(tmp_path: Path) -> None:
    out = tmp_path / "albstats-report"
    res = runner.invoke(
        app, ["report", "fixtures/AWSLogs", "--out", str(out), "--db", str(tmp_path / "c.duckdb")], prog_name="albstats"
    )
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines()[0] == NOTICE
    assert (out / "report.json").is_file() and (out / "report.html").is_file()


def test_out_is_no_alias_in_commands_that_never_had_it(tmp_path: Path) -> None:
    res = runner.invoke(app, ["parse", str(LOG), "--out", str(tmp_path / "x.jsonl")], prog_name="albstats")
    assert res.exit_code == 2 and "No such option: --out" in res.stderr


def test_only_option_positions_are_translated() -> None:
    report = get_command(app).get_command(None, "report")  # type: ignore[attr-defined]
    args = ["logs", "--db", "--out", "--out", "d", "--", "--out"]
    assert options.translate_args(report, args) == ["logs", "--db", "--out", "--output", "d", "--", "--out"]
    proxy = get_command(app).get_command(None, "proxy")  # type: ignore[attr-defined]
    assert options.translate_args(proxy, ["nginx-config", "--profile", "x"], group=True) == [
        "nginx-config",
        "--profile",
        "x",
    ]  # the subcommand's own arguments are its business


# --- --profile is the AWS profile, also for S3 reads outside Athena --------------------------------


@pytest.fixture
def s3_logs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A moto bucket holding one fixture day, readable only with the AWS profile `albstats-test`."""
    for k in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "credentials").write_text(
        "[albstats-test]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    (tmp_path / "config").write_text("[profile albstats-test]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with mock_aws():
        c = boto3.session.Session(profile_name="albstats-test").client("s3")
        c.create_bucket(Bucket="alb-logs")
        root = ROOT / "fixtures"
        for f in sorted(DAY.glob("*.log.gz")):
            c.put_object(Bucket="alb-logs", Key=f.relative_to(root).as_posix(), Body=f.read_bytes())
        yield "s3://alb-logs/AWSLogs/"


@pytest.mark.integration  # slow (~3-8 s)
@pytest.mark.parametrize("cmd", [["whatif"], ["query", "error_rate"], ["parse"]])
def test_profile_reaches_s3_reads(s3_logs: str, tmp_path: Path, cmd: list[str]) -> None:
    extra = {
        "whatif": ["--simulations", "2000", "-f", "json"],
        "parse": ["-q"],
        "query": ["--db", str(tmp_path / "c.db"), "-f", "json", "-q"],
    }[cmd[0]]
    res = runner.invoke(app, [*cmd, s3_logs, "--profile", "albstats-test", *extra], prog_name="albstats")
    assert res.exit_code == 0, res.output
    local = runner.invoke(app, [*cmd, str(DAY), *[e.replace("c.db", "d.db") for e in extra]])
    assert res.stdout == local.stdout  # the same files, read from S3 with that profile's credentials
    res = runner.invoke(app, [*cmd, s3_logs, "--profile", "no-such-profile", *extra], prog_name="albstats")
    assert res.exit_code == 1 and res.stderr.startswith("albstats: error: --profile no-such-profile:"), res.output


@pytest.mark.parametrize("cmd", [["query", "error_rate"], ["report"], ["parse"]])
def test_profile_without_s3_or_athena_is_a_usage_error(cmd: list[str], tmp_path: Path) -> None:
    """An AWS profile that nothing would use is said so, not silently ignored."""
    db = [] if cmd == ["parse"] else ["--db", str(tmp_path / "c.duckdb")]
    res = runner.invoke(app, [*cmd, str(DAY), "--profile", "prod", *db], prog_name="albstats")
    assert res.exit_code == 2
    assert res.stderr == (
        "albstats: error: --profile is the AWS profile, for s3:// paths only\n"
        if db == []
        else "albstats: error: --profile is the AWS profile: for s3:// paths or --engine athena\n"
    )


# --- parse: choices, -o's folder, files that are no logs (item 9) ----------------------------------


@pytest.mark.parametrize(
    ("args", "option", "choices"),
    [
        (["parse", str(LOG), "--kind", "weird"], "'--kind'", "'weird' is not one of 'auto', 'access', 'connection'"),
        (["parse", str(LOG), "--format", "xml"], "'--format' / '-f'", "'xml' is not one of 'jsonl', 'csv', 'parquet'"),
        (["query", "error_rate", str(LOG), "-f", "xml"], "'--format' / '-f'", "'xml' is not one of"),
        (
            ["query", "error_rate", str(LOG), "--engine", "spark"],
            "'--engine'",
            "'spark' is not one of 'local', 'athena'",
        ),
        (["report", str(LOG), "-f", "pdf"], "'--format' / '-f'", "'pdf' is not one of"),
        (["compare", str(LOG), str(LOG), "-f", "csv"], "'--format' / '-f'", "'csv' is not one of 'table', 'json'"),
        (["whatif", str(LOG), "--policy", "aggressive"], "'--policy'", "'aggressive' is not one of"),
        (["generate", "-o", "/tmp", "--scenario", "busy"], "'--scenario'", "'busy' is not one of 'default', 'hosp'"),
        (
            ["athena", "create-table", "--s3-bucket", "b", "--account", "1", "--region", "r", "--format", "orc"],
            "'--format'",
            "'orc' is not one of 'text', 'parquet'",
        ),
    ],
)
def test_choices_are_validated(args: list[str], option: str, choices: str) -> None:
    """Literal choices, checked by Typer: one line naming the option and the allowed values, exit 2.

    (The words between the two are Typer's: ``Value error, `` since Typer 0.29 validates with pydantic.)"""
    res = runner.invoke(app, args, prog_name="albstats")
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(f"albstats: error: Invalid value for {option}: "), res.stderr
    assert choices in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["parse", str(LOG), "-o", "MISSING/out.jsonl"],
        ["parse", str(LOG), "-f", "parquet", "-o", "MISSING/out.parquet"],
        ["query", "error_rate", str(LOG), "-o", "MISSING/out.csv", "--db", "DB"],
        ["sql", "run", "SELECT 1 AS x", str(LOG), "-o", "MISSING/out.csv", "--db", "DB"],
        ["report", str(LOG), "-o", "MISSING/report", "--db", "DB"],
        ["weekly", str(LOG), "-o", "MISSING/weekly", "--db", "DB"],
        ["generate", "-o", "MISSING/logs", "--lines", "10"],
        ["fetch", "s3://alb-logs/AWSLogs/", "-o", "MISSING/mirror"],
    ],
)
def test_output_in_a_missing_folder_is_refused_and_nothing_created(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "no" / "such"
    args = [
        a.replace("MISSING", str(missing)) if "MISSING" in a else str(tmp_path / "c.duckdb") if a == "DB" else a
        for a in args
    ]
    target = Path(args[args.index("-o") + 1])
    res = runner.invoke(app, [*args, "-q"], prog_name="albstats")
    assert res.exit_code == 2, res.output
    assert res.stderr == f"albstats: error: -o {target}: folder {target.parent} does not exist (create it first)\n"
    assert not (tmp_path / "no").exists()


def test_a_named_file_that_is_no_log_names_what_it_is(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["parse", str(readme), "-o", str(out)], prog_name="albstats")
    assert res.exit_code == 1, res.output
    assert f"albstats: error: {readme}: this is text (line 1: '# albstats'), not an ALB access log\n" in res.stderr
    assert not out.exists() and list(tmp_path.glob("*.part")) == []
    cases = {
        "data.json": (b'[{"a": 1}]\n', "JSON"),
        "x.csv": (b"time,client,status\n1,2,3\n", "CSV"),
        "blob.log": (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary data"),
        "page.log.gz": (gzip.compress(b"<!doctype html>\n<html>\n"), "HTML or XML"),
    }
    for name, (data, found) in cases.items():
        (tmp_path / name).write_bytes(data)
        res = runner.invoke(app, ["parse", str(tmp_path / name), "-q"], prog_name="albstats")
        assert res.exit_code == 1 and f"{tmp_path / name}: this is {found} (line 1: " in res.stderr, res.output


@pytest.mark.parametrize("engine", ["c", "python"])
def test_a_log_cut_mid_line_is_still_a_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    """`tail -c 2000 x.log > cut.log`: its first line is a fragment, the next ones are ALB lines, so it is a
    log with one malformed line, not "no log" (every engine decides alike). A text file still is not."""
    monkeypatch.setenv("ALBSTATS_PARSER", engine)
    text = gzip.decompress(LOG.read_bytes())
    cut = tmp_path / "cut.log"
    cut.write_bytes(text[-2000:])
    lines = cut.read_text().splitlines()
    res = runner.invoke(app, ["parse", str(cut)], prog_name="albstats")
    assert res.exit_code == 0, res.output
    assert f"{len(lines)} lines, {len(lines) - 1} rows, 1 malformed lines" in res.stderr, res.stderr
    assert f"{cut}:1: " in res.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(f"note {i}" for i in range(20)) + "\n" + lines[-1] + "\n")  # a log line, too late
    res = runner.invoke(app, ["parse", str(notes)], prog_name="albstats")
    assert res.exit_code == 1 and f"{notes}: this is text (line 1: 'note 0'), not an ALB access log" in res.stderr


def test_no_log_inside_a_folder_is_not_an_error_of_its_own(tmp_path: Path) -> None:
    """Only a file named on purpose is refused; one found in a folder is counted as before."""
    (tmp_path / "logs").mkdir()
    shutil.copy(LOG, tmp_path / "logs" / LOG.name)
    (tmp_path / "logs" / "notes.log").write_text("written by hand\n")
    res = runner.invoke(app, ["parse", str(tmp_path / "logs"), "-o", str(tmp_path / "o.jsonl")])
    assert "not an ALB" not in res.stderr and (tmp_path / "o.jsonl").is_file()
