"""S3 as a source, against moto: only the day folders a window needs are listed and read, the numbers
equal those from the same files on disk, fetch mirrors and resumes, and AWS errors keep AWS's code."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from albstats import s3 as s3mod
from albstats.cli import app
from albstats.errors import AwsError
from albstats.generate import generate

BUCKET = "alb-logs-test"
PREFIX = "prod/web"
ACCOUNT = "123456789012"
REGION_ROOT = f"{PREFIX}/AWSLogs/{ACCOUNT}/elasticloadbalancing/us-east-2/"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("ALBSTATS_CACHE_DB", str(tmp_path / "cache.duckdb"))


@pytest.fixture(scope="module")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated logs around three midnights (22:00 to 02:00 from 2026-11-16 on), so four delivery-day
    folders (16th to 19th) exist, and the rows of 23:55-24:00 sit in the next day's folder."""
    out = tmp_path_factory.mktemp("alb")
    for day in (16, 17, 18):
        generate(out, start=f"2026-11-{day}T22:00:00Z", days=4 / 24, rps=0.05, seed=7, nodes=1)
    return out


@pytest.fixture
def bucket(logs_dir: Path) -> dict[str, Path]:
    """A moto bucket holding the generated files under PREFIX in the real key layout; key -> local file."""
    with mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        c.create_bucket(Bucket=BUCKET)
        keys: dict[str, Path] = {}
        for f in sorted(logs_dir.rglob("*")):
            if f.is_file():
                key = f"{PREFIX}/{f.relative_to(logs_dir).as_posix()}"
                c.put_object(Bucket=BUCKET, Key=key, Body=f.read_bytes())
                keys[key] = f
        yield keys


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Record which prefixes albstats lists and which keys it reads, with a botocore event hook on the
    real client albstats creates."""
    seen: dict[str, list[str]] = {"list": [], "get": []}
    real = s3mod.client

    def recording_client(*a, **kw):
        c = real(*a, **kw)
        c.meta.events.register(
            "provide-client-params.s3.ListObjectsV2", lambda params, **_: seen["list"].append(params.get("Prefix", ""))
        )
        c.meta.events.register(
            "provide-client-params.s3.GetObject", lambda params, **_: seen["get"].append(params["Key"])
        )
        return c

    monkeypatch.setattr(s3mod, "client", recording_client)
    return seen


def _day(key: str) -> date:
    m = re.search(r"/(\d{4})/(\d{2})/(\d{2})/", key)
    return date(int(m[1]), int(m[2]), int(m[3]))


def test_list_sources_lists_only_needed_day_folders(bucket: dict[str, Path], calls: dict[str, list[str]]) -> None:
    srcs = s3mod.list_sources(
        f"s3://{BUCKET}/{PREFIX}",
        since=datetime(2026, 11, 17, 6, tzinfo=UTC),
        until=datetime(2026, 11, 17, 18, tzinfo=UTC),
    )
    days = {_day(s.name) for s in srcs}
    assert days == {date(2026, 11, 17), date(2026, 11, 18)}  # the window's day plus the next
    want = sorted(k for k in bucket if k.endswith(".log.gz") and _day(k) in days)
    assert [s.name for s in srcs] == [f"s3://{BUCKET}/{k}" for k in want]
    # listings: discovery of account/region, then the two day folders, nothing else
    day_lists = [p for p in calls["list"] if re.search(r"/\d{4}/\d{2}/\d{2}/$", p)]
    assert sorted(day_lists) == [REGION_ROOT + "2026/11/17/", REGION_ROOT + "2026/11/18/"]
    assert all(not p.endswith("/us-east-2/") for p in calls["list"])  # the region folder is never listed whole
    assert calls["get"] == []  # listing reads nothing
    s = srcs[0]
    assert s.size == bucket[s.name.removeprefix(f"s3://{BUCKET}/")].stat().st_size
    assert re.fullmatch(r"[0-9a-f]{32}", s.etag)
    with s.open() as f:
        assert f.read() == bucket[s.name.removeprefix(f"s3://{BUCKET}/")].read_bytes()


@pytest.mark.parametrize(
    "url",
    [
        f"s3://{BUCKET}/{PREFIX}/",
        f"s3://{BUCKET}/{PREFIX}/AWSLogs/",
        f"s3://{BUCKET}/{PREFIX}/AWSLogs/{ACCOUNT}",
        f"s3://{BUCKET}/{REGION_ROOT}",
        f"s3://{BUCKET}/{REGION_ROOT}2026/11/",
    ],
)
@pytest.mark.integration  # slow: 5 s under load
def test_every_prefix_level_gives_the_same_files(url: str, bucket: dict[str, Path]) -> None:
    srcs = s3mod.list_sources(url, since="2026-11-18T00:00:00Z", until="2026-11-18T01:00:00Z")
    assert {_day(s.name) for s in srcs} == {date(2026, 11, 18), date(2026, 11, 19)}
    everything = s3mod.list_sources(url)
    assert len(everything) == sum(1 for k in bucket if k.endswith(".log.gz"))
    assert not any(s.is_control for s in everything)


@pytest.mark.integration  # slow: 3 s under load
def test_open_ended_and_long_windows(bucket: dict[str, Path], calls: dict[str, list[str]]) -> None:
    srcs = s3mod.list_sources(f"s3://{BUCKET}/{PREFIX}", since="2026-11-19T00:00:00Z")
    assert {_day(s.name) for s in srcs} == {date(2026, 11, 19)}
    srcs = s3mod.list_sources(
        f"s3://{BUCKET}/{PREFIX}", since="2025-01-01T00:00:00Z", until="2026-11-17T00:00:00Z"
    )  # > 62 days: month folders, filtered by day
    assert {_day(s.name) for s in srcs} == {date(2026, 11, 16), date(2026, 11, 17)}
    assert REGION_ROOT + "2026/11/" in calls["list"]


def _query(args: list[str]) -> list[dict]:
    res = CliRunner().invoke(app, ["query", "error_rate", *args, "--format", "json", "--quiet"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_query_over_s3_reads_only_needed_folders_and_matches_disk(
    bucket: dict[str, Path], logs_dir: Path, calls: dict[str, list[str]]
) -> None:
    window = ["--since", "2026-11-17T00:00:00Z", "--until", "2026-11-18T00:00:00Z", "--bucket", "1h"]
    from_s3 = _query([f"s3://{BUCKET}/{PREFIX}", *window, "--no-cache"])
    from_disk = _query([str(logs_dir), *window, "--no-cache"])
    assert from_s3 == from_disk
    assert [r["bucket_start"][11:16] for r in from_s3] == ["00:00", "01:00", "22:00", "23:00"]
    assert all(r["requests"] > 0 for r in from_s3)
    read_days = {_day(k) for k in calls["get"]}
    assert read_days == {date(2026, 11, 17), date(2026, 11, 18)}
    want = {k for k in bucket if k.endswith(".log.gz") and _day(k) in read_days}
    assert set(calls["get"]) == want  # every needed file read, once each
    assert len(calls["get"]) == len(want)
    # the 23:55-24:00 rows sit in the 18th's folder: without it the last bucket would be short
    last = from_s3[-1]
    assert last["bucket_start"].startswith("2026-11-17T23:00")


@pytest.mark.integration  # slow: 5 s under load
def test_fetch_mirrors_and_resumes(bucket: dict[str, Path], tmp_path: Path, calls: dict[str, list[str]]) -> None:
    out = tmp_path / "mirror"
    url = f"s3://{BUCKET}/{PREFIX}"
    s1 = s3mod.fetch(url, out, since="2026-11-17T00:00:00Z", until="2026-11-17T12:00:00Z", quiet=True)
    assert s1.downloaded == s1.listed > 0 and s1.skipped == 0
    files = sorted(p for p in out.rglob("*.log.gz"))
    assert len(files) == s1.listed
    for p in files:  # same relative layout below the prefix, same bytes
        key = f"{PREFIX}/{p.relative_to(out).as_posix()}"
        assert p.read_bytes() == bucket[key].read_bytes()
    assert not list(out.rglob("*.part"))
    manifest = json.loads((out / s3mod.MANIFEST_NAME).read_text())
    assert len(manifest["files"]) == s1.listed
    # second run: nothing to download
    calls["get"].clear()
    s2 = s3mod.fetch(url, out, since="2026-11-17T00:00:00Z", until="2026-11-17T12:00:00Z", quiet=True)
    assert (s2.downloaded, s2.skipped) == (0, s1.listed) and calls["get"] == []
    # a changed object (new ETag) and a deleted local file are fetched again, nothing else
    c = boto3.client("s3", region_name="us-east-1")
    changed = f"{PREFIX}/{files[0].relative_to(out).as_posix()}"
    c.put_object(Bucket=BUCKET, Key=changed, Body=b"changed")
    files[1].unlink()
    calls["get"].clear()
    s3 = s3mod.fetch(url, out, since="2026-11-17T00:00:00Z", until="2026-11-17T12:00:00Z", quiet=True)
    assert s3.downloaded == 2 and s3.skipped == s1.listed - 2
    assert files[0].read_bytes() == b"changed" and files[1].exists()
    assert sorted(calls["get"]) == sorted([changed, f"{PREFIX}/{files[1].relative_to(out).as_posix()}"])


@pytest.mark.integration  # slow: 3 s under load
def test_fetch_cli(bucket: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = [
        "fetch",
        f"s3://{BUCKET}/{PREFIX}/",
        "--since",
        "2026-11-18T00:00:00Z",
        "--until",
        "2026-11-18T06:00:00Z",
        "-o",
        str(out),
        "--quiet",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "downloaded" in res.stderr
    n = len(list(out.rglob("*.log.gz")))
    assert n > 0
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and f"{n} already present" in res.stderr


def test_no_such_bucket_is_an_aws_error(bucket: dict[str, Path]) -> None:
    with pytest.raises(AwsError, match=r"NoSuchBucket: The specified bucket does not exist"):
        s3mod.list_sources("s3://no-such-bucket-here/x/", since="2026-11-17", until="2026-11-18")
    res = CliRunner().invoke(app, ["query", "error_rate", "s3://no-such-bucket-here/x/", "--no-cache", "-q"])
    assert res.exit_code == 1
    assert "albstats: error:" in res.stderr and "NoSuchBucket" in res.stderr


def test_access_denied_is_an_aws_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core import set_initial_no_auth_action_count

    @set_initial_no_auth_action_count(3)
    @mock_aws
    def run() -> None:
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="locked")
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        with pytest.raises(AwsError, match=r"AccessDenied") as ei:
            s3mod.list_sources("s3://locked/", since="2026-11-17", until="2026-11-18")
        assert key["SecretAccessKey"] not in str(ei.value)

    run()


def test_empty_prefix_is_a_usage_error(bucket: dict[str, Path]) -> None:
    from albstats.errors import UsageError

    with pytest.raises(UsageError, match="no objects under this S3 prefix"):
        s3mod.list_sources(f"s3://{BUCKET}/typo/")
    # a window without files is not an error: there was no traffic to log
    assert s3mod.list_sources(f"s3://{BUCKET}/{PREFIX}/", since="2030-01-01", until="2030-01-02") == []


def test_bad_url() -> None:
    from albstats.errors import UsageError

    with pytest.raises(UsageError):
        s3mod.parse_url("s3://")


@pytest.mark.integration  # slow: 7 s under load
def test_ingest_cache_keys_s3_files_on_etag(bucket: dict[str, Path], calls: dict[str, list[str]]) -> None:
    """A second query over the same S3 window reads nothing; a changed object (new ETag) is read again."""
    window = [f"s3://{BUCKET}/{PREFIX}", "--since", "2026-11-17T22:00:00Z", "--until", "2026-11-18T00:00:00Z"]
    first = _query(window)
    n_read = len(calls["get"])
    assert n_read > 0
    calls["get"].clear()
    assert _query(window) == first
    assert calls["get"] == []
    key = sorted(k for k in bucket if "/2026/11/18/" in k and k.endswith(".log.gz"))[0]
    # rewritten with the same bytes: same ETag, not read again
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key=key, Body=bucket[key].read_bytes())
    calls["get"].clear()
    _query(window)
    assert calls["get"] == []
    import gzip

    lines = gzip.decompress(bucket[key].read_bytes()).splitlines(keepends=True)
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=BUCKET, Key=key, Body=gzip.compress(b"".join(lines[:-1]))
    )
    calls["get"].clear()
    _query(window)
    # the changed object, and the other objects of its day (their shared Parquet part is rebuilt without
    # the old copy's rows), nothing of other days
    assert key in calls["get"] and all("/2026/11/18/" in k for k in calls["get"])
    calls["get"].clear()
    _query(window)
    assert calls["get"] == []
