"""Reading files: formats, folders, damage, bad-line accounting, both engines giving the same rows."""

from __future__ import annotations

import gzip
import io
import os
import random
import zlib
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import load_jsonl

from albstats.errors import InputError, UsageError
from albstats.logformat import escape, format_line
from albstats.parse import ParseStats, iter_batches, parse_line, read_table
from albstats.parsing.reading import ZLIB_ERRORS
from albstats.schema import ACCESS

ACCESS_SAMPLES = [s["line"] for s in load_jsonl("alb_access_samples.jsonl")]
NON_ALB = load_jsonl("non_alb_samples.jsonl")
CLASSIC = next(s["line"] for s in NON_ALB if s["notes"].startswith("CLASSIC"))
NLB = next(s["line"] for s in NON_ALB if s["notes"].startswith("NLB"))
CONTROL = next(s["line"] for s in NON_ALB if s["notes"].startswith("CONTROL"))
LINE = ACCESS_SAMPLES[0]
KEY = "123456789012_elasticloadbalancing_us-east-2_app.my-lb.50dc6c495c0c9188_20240101T{hm}Z_10.0.0.{n}_abc{n}.log.gz"


def good_lines(n: int) -> list[str]:
    out = []
    for i in range(n * 2):
        line = format_line(_values(random.Random(i), i), ntokens=30)
        try:
            parse_line(line)
        except ValueError:
            continue
        out.append(line)
    return out[:n]


def gz(path: Path, lines: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return str(path)


def table(paths, **kw) -> tuple[pa.Table, ParseStats]:
    stats = ParseStats()
    t = read_table([str(p) for p in paths], stats=stats, **kw)
    return t, stats


def both(paths, **kw) -> tuple[pa.Table, ParseStats]:
    """Run both engines; they must agree on rows and on every file statistic."""
    fast, fs = table(paths, engine="fast", workers=2, **kw)
    slow, ss = table(paths, engine="python", **kw)
    assert fast.to_pylist() == slow.to_pylist()
    assert [asdict(f) for f in fs.files] == [asdict(f) for f in ss.files]
    return fast, fs


# --- lines that stress the fast engine's checks -------------------------------------------------


def _values(rng: random.Random, i: int) -> dict:
    v6 = rng.random() < 0.3
    return {
        "type": rng.choice(["http", "https", "h2", "grpcs", "ws", "wss"]),
        "time": f"2024-01-01T00:00:{i % 60:02d}.{i:06d}Z",
        "elb": "app/my-lb/50dc6c495c0c9188",
        "client_ip": f"2600:1f18::{i:x}" if v6 else f"10.0.{i % 256}.{rng.randint(1, 254)}",
        "client_port": rng.choice([rng.randint(1, 65535), 2**33, 2**31 - 1, 2**31]),
        "target_ip": rng.choice([None, "10.0.1.5", "fd00::5"]),
        "target_port": 8080,
        "request_processing_time": rng.choice([-1.0, 0.0, 0.001]),
        "target_processing_time": rng.choice([-1.0, 1.234, 19.5]),
        "response_processing_time": 0.0,
        "elb_status_code": rng.choice([200, 460, 502, 504]),
        "target_status_code": rng.choice(["200", "-", "500"]),
        "received_bytes": rng.randint(0, 10**12),
        "sent_bytes": rng.randint(0, 9999),
        "request_verb": rng.choice(["GET", "-", "POST"]),
        "request_url": rng.choice(["https://h:443/a b c", "http://h:80-", 'https://h:443/?q="x"', "/x"]),
        "request_proto": rng.choice(["HTTP/1.1", "-", "HTTP/2.0"]),
        "user_agent": rng.choice(["curl/8", "-", escape('say "hi" \\o/'), "", "a  b", escape("end\\")]),
        "ssl_cipher": "-",
        "ssl_protocol": "-",
        "target_group_arn": "arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/x/1",
        "trace_id": "Root=1-abc",
        "domain_name": rng.choice(["-", "", "x.example.com"]),
        "chosen_cert_arn": "-",
        "matched_rule_priority": rng.choice(["0", "-1", "-", "12"]),
        "request_creation_time": f"2024-01-01T00:00:00.{i:06d}Z",
        "actions_executed": "forward",
        "redirect_url": rng.choice(["-", "https://x:443/a b"]),
        "lambda_error_reason": "-",
        "target_port_list": rng.choice(["-", "10.0.1.5:8080", "10.0.1.5:8080 10.0.1.6:8080"]),
        "target_status_code_list": "-",
        "classification": "-",
        "classification_reason": "-",
        "conn_trace_id": f"TID_{i:032x}",
        "transformed_host": "-",
        "transformed_uri": "-",
        "request_transform_status": "-",
        "ip_address": "3.3.3.3",
        "extra_fields": rng.choice([None, None, '"-" "-"', 'x "a b"']),
    }


def tricky_lines(n: int, seed: int = 7) -> list[str]:
    """Generated lines of every era with escapes, IPv6, spaces, plus malformed ones and blanks."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        era = rng.choice([20, 24, 25, 27, 29, 30, 33, 34, 34, 34])
        line = format_line(_values(rng, i), ntokens=era)
        r = rng.random()
        if r < 0.03:
            line = line.replace('" ', '"', 1)  # closing quote followed by text: '"-"1'
        elif r < 0.05:
            line = line[: rng.randint(1, len(line) - 1)]  # truncated, maybe inside a quote
        elif r < 0.06:
            line = line.replace(" ", "  ", 1)
        elif r < 0.07:
            line = ""
        elif r < 0.08:
            line = line + " "
        elif r < 0.09:
            line = line.replace(' "', ' x"', 1)  # a quote inside a bare field
        elif r < 0.10:
            line = line.replace("200", "2OO", 1)
        out.append(line)
    return out


def test_fast_engine_equals_line_by_line_on_tricky_lines(tmp_path):
    lines = tricky_lines(4500)  # the first file is over 2 MB: several blocks of Arrow's CSV reader
    p1 = gz(tmp_path / "a.log.gz", lines[:3500])
    p2 = tmp_path / "b.log"
    p2.write_text("\n".join(lines[3500:]))  # no final newline
    t, stats = both([p1, p2])
    assert stats.bad_lines > 50 and t.num_rows > 3000
    # and every row is exactly parse_line's
    expect = []
    for line in lines:
        try:
            expect.append(dict(zip(ACCESS.names, parse_line(line))))
        except ValueError:
            pass
    assert t.to_pylist() == [r for r in expect]


def test_fast_engine_equals_line_by_line_on_corpus_and_generated(tmp_path):
    from albstats.generate import generate

    generate(tmp_path / "gen", days=0.05, lines=4000, seed=3, format_era=30)
    generate(tmp_path / "gen36", days=0.02, lines=800, seed=4, format_era=36)
    (tmp_path / "corpus.log").write_text("\n".join(ACCESS_SAMPLES) + "\n")
    t, stats = both([tmp_path / "gen", tmp_path / "gen36", tmp_path / "corpus.log"])
    assert stats.rows == 4000 + 800 + len(ACCESS_SAMPLES) and stats.bad_lines == 0
    assert t.filter(pa.compute.is_valid(t["extra_fields"])).num_rows >= 800


@pytest.mark.parametrize("fields", [["time", "elb_status_code"], ["client_port", "request_url", "extra_fields"]])
def test_projection_gives_the_same_values(tmp_path, fields):
    lines = tricky_lines(800, seed=11)
    p = gz(tmp_path / "a.log.gz", lines)
    full, _ = both([p])
    part, stats = both([p], fields=fields)
    assert part.column_names == fields
    assert part.to_pylist() == full.select(fields).to_pylist()


# --- inputs -------------------------------------------------------------------------------------


def test_plain_gz_multimember_and_folder_layout(tmp_path):
    day = tmp_path / "AWSLogs" / "123456789012" / "elasticloadbalancing" / "us-east-2" / "2024" / "01" / "01"
    a = gz(day / KEY.format(hm="0005", n=1), ACCESS_SAMPLES[:10])
    multi = day / KEY.format(hm="0010", n=2)
    multi.write_bytes(
        gzip.compress(("\n".join(ACCESS_SAMPLES[10:20]) + "\n").encode())
        + gzip.compress(("\n".join(ACCESS_SAMPLES[20:30]) + "\n").encode())
    )
    plain = day.parent / "02" / KEY.format(hm="0015", n=3).removesuffix(".gz")
    plain.parent.mkdir(parents=True)
    plain.write_text("\n".join(ACCESS_SAMPLES[30:]) + "\n")
    (tmp_path / "AWSLogs" / "123456789012" / "ELBAccessLogTestFile").write_text(CONTROL + "\n")
    (day / "notes.txt").write_text("not a log\n")
    t, stats = both([tmp_path])
    assert t.num_rows == len(ACCESS_SAMPLES) and stats.files_read == 3
    assert [Path(f.name).name for f in stats.files] == [Path(a).name, multi.name, plain.name]
    # a glob, and the same folder named twice reads it twice
    t2, s2 = both([str(day / "*.log.gz")])
    assert t2.num_rows == 30
    t3, _ = table([tmp_path, tmp_path])
    assert t3.num_rows == 2 * len(ACCESS_SAMPLES)


def test_gunzip_reads_members_padding_and_damage():
    """Both gunzip paths (albstats.parsing.reading): whatever a file holds (another member, even an identical
    one, padding, junk, a gzip magic inside stored data, a member split across reads, a trailer whose size is
    wrong) comes out as gzip reads it, and damage keeps what came before it. gunzip_whole, the one-call path
    for a whole small file, either gives exactly that text or declines (None) and leaves the file to gunzip."""
    from albstats.parsing.reading import gunzip, gunzip_whole

    text = ("\n".join(ACCESS_SAMPLES) + "\n").encode()
    one = gzip.compress(text)
    stored = gzip.compress(text + b"\x1f\x8b\x08 inside the data\n", compresslevel=0)
    assert stored.find(b"\x1f\x8b\x08", 1) > 0
    corrupt = bytearray(one)
    corrupt[len(one) // 2] ^= 0xFF
    cases = {
        "one": (one, text, None),
        "twice": (one + one, text + text, None),
        "two members": (one + gzip.compress(b"x\n"), text + b"x\n", None),
        "stored with a magic inside": (stored, text + b"\x1f\x8b\x08 inside the data\n", None),
        "zero padding": (one + b"\0" * 8, text, None),  # as gzip and Python's GzipFile read it
        "junk": (one + b"junk after the member", text, "damage"),
        "truncated": (one[:-3], None, "damage"),
        "corrupt in the middle": (bytes(corrupt), None, "damage"),
        "trailer size too small": (one[:-4] + (len(text) // 3).to_bytes(4, "little"), None, "damage"),
        "empty member": (gzip.compress(b""), b"", None),
    }
    whole = {name: gunzip_whole(raw) for name, (raw, _, _) in cases.items()}
    for name, (_, want, err) in cases.items():
        assert whole[name] is None or (err is None and whole[name] == want), name
    # a single sound member (what ALB writes) is read in one call; several members are left to gunzip
    assert [n for n, w in whole.items() if w is not None] == [
        "one",
        "stored with a magic inside",
        "zero padding",
        "empty member",
    ]
    for chunk_size in (1 << 20, 7):
        for name, (raw, want, err) in cases.items():
            out: list[bytes] = []
            e = None
            try:
                for piece in gunzip(io.BytesIO(raw), chunk_size=chunk_size):
                    out.append(piece)
            except (EOFError, *ZLIB_ERRORS) as exc:
                e = exc
            assert (e is not None) == (err is not None), name
            if want is not None:
                assert b"".join(out) == want, name
            elif name == "corrupt in the middle":  # salvaged: the text before the damage, exactly as it was
                got = b"".join(out)
                assert len(os.path.commonprefix([got, text])) > len(text) // 4, name


def test_missing_path_and_empty_glob_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        table([tmp_path / "nope.log"])
    with pytest.raises(UsageError, match="no files match"):
        table([str(tmp_path / "*.log.gz")])


@pytest.mark.parametrize(
    "line,found",
    [(CLASSIC, "Classic Load Balancer"), (NLB, "Network Load Balancer"), (CONTROL, "ELBAccessLogTestFile")],
)
@pytest.mark.parametrize("engine", ["fast", "python"])
def test_other_format_named_directly_is_an_error(tmp_path, line, found, engine):
    p = gz(tmp_path / "x.log.gz", [line] * 3)
    with pytest.raises(InputError) as e:
        table([p], engine=engine)
    assert str(p) in str(e.value) and found in str(e.value)


def test_other_format_inside_a_folder_is_skipped(tmp_path):
    gz(tmp_path / "a.log.gz", ACCESS_SAMPLES[:5])
    gz(tmp_path / "b.log.gz", [CLASSIC] * 4)
    t, stats = both([tmp_path])
    assert t.num_rows == 5 and stats.bad_lines == 0
    assert "Classic" in stats.files[1].skipped and "1 files skipped" in stats.summary()


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_gzip_keeps_lines_before_damage(tmp_path, cut):
    lines = good_lines(3000)
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    p = tmp_path / "cut.log.gz"
    p.write_bytes(data[: int(len(data) * cut)])
    t, stats = both([p])
    assert 0 < t.num_rows < 3000
    assert t.to_pylist() == [dict(zip(ACCESS.names, parse_line(x))) for x in lines[: t.num_rows]]
    assert "truncated" in stats.files[0].error and str(p) in stats.errors[0]


def test_corrupt_gzip_keeps_lines_before_damage(tmp_path):
    lines = good_lines(3000)
    data = bytearray(gzip.compress(("\n".join(lines) + "\n").encode()))
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    p = tmp_path / "bad.log.gz"
    p.write_bytes(bytes(data))
    t, stats = both([p])
    assert 0 < t.num_rows < 3000 and stats.files[0].error
    assert "corrupt" in stats.files[0].error or "truncated" in stats.files[0].error


def test_strict_makes_a_bad_line_fatal_with_file_and_line(tmp_path):
    p = gz(tmp_path / "s.log.gz", [LINE, LINE, "http 2023-04-01T12:00:00Z alb", LINE])
    for engine in ("fast", "python"):
        with pytest.raises(InputError, match=r"s\.log\.gz:3: malformed line"):
            table([p], strict=True, engine=engine)


def test_bad_lines_counted_per_file_first_few_shown(tmp_path):
    a = gz(tmp_path / "a.log.gz", [LINE, "junk"] * 10)
    b = gz(tmp_path / "b.log.gz", [LINE, LINE, "http x"])
    t, stats = both([a, b])
    assert [f.bad_lines for f in stats.files] == [10, 1]
    ex = stats.bad_examples()
    assert len(ex) == 5 and ex[0].startswith(f"{a}:2: ") and ex[1].startswith(f"{a}:4: ")
    assert stats.files[1].bad_examples[0][0] == 3


def test_non_utf8_and_crlf_lines(tmp_path):
    raw = LINE.replace("curl/7.46.0", "caf\xe9").encode("latin-1") + b"\r\n" + LINE.encode() + b"\r\n"
    p = tmp_path / "x.log"
    p.write_bytes(raw)
    t, _ = both([p])
    assert t["user_agent"].to_pylist() == ["caf\ufffd", "curl/7.46.0"]


def test_stdin(monkeypatch):
    data = ("\n".join(ACCESS_SAMPLES) + "\n").encode()

    class FakeStdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr("sys.stdin", FakeStdin)
    t, stats = table(["-"])
    assert t.num_rows == len(ACCESS_SAMPLES) and stats.files[0].name == "<stdin>"


@pytest.mark.c_engine  # the reference engine reads line by line, in batches of batch_size rows
def test_big_file_streams_in_blocks(tmp_path, monkeypatch):
    from albstats.parsing import reading

    monkeypatch.setattr(reading, "STREAM_OVER", 1000)
    monkeypatch.setattr(reading, "BLOCK_BYTES", 20_000)
    lines = tricky_lines(2000, seed=5)
    p = gz(tmp_path / "big.log.gz", lines)
    batches = list(iter_batches([p], engine="c"))
    assert len(batches) > 5
    slow, ss = table([p], engine="python")
    assert pa.Table.from_batches(batches).to_pylist() == slow.to_pylist()


def test_gzip_error_type_is_caught():
    assert issubclass(zlib.error, Exception)


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_parallel_workers_give_the_same_rows_and_stats(tmp_path, monkeypatch, kind):
    from albstats.parsing import pool, reading

    monkeypatch.setenv("ALBSTATS_WORKERS_KIND", kind)
    monkeypatch.setattr(reading, "BLOCK_BYTES", 60_000)  # many small groups, so the pool is used
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(pool, "_spill_dir", lambda: str(spill))
    lines = tricky_lines(2400, seed=21)
    paths = [gz(tmp_path / "logs" / f"f{i:02d}.log.gz", lines[i * 200 : (i + 1) * 200]) for i in range(12)]
    procs = kind == "process"
    t, stats = both([tmp_path / "logs"], processes=procs)
    assert stats.files_read == 12 and stats.bad_lines > 0
    assert list(spill.iterdir()) == []  # every hand-over file was consumed and removed
    # a malformed line under --strict stops the run with its file and line, from inside a worker
    with pytest.raises(InputError, match=r"f\d\d\.log\.gz:\d+: malformed line"):
        table([tmp_path / "logs"], strict=True, workers=2, processes=procs)
    assert list(spill.iterdir()) == []
    # and a file of another format named directly is still an error naming it
    other = gz(tmp_path / "logs" / "zz-classic.log.gz", [CLASSIC] * 3)
    with pytest.raises(InputError, match="Classic"):
        table([*paths, other], workers=2, processes=procs)


def test_worker_hand_over_without_shared_memory(tmp_path, monkeypatch):
    from albstats.parsing import pool, reading

    monkeypatch.setattr(reading, "BLOCK_BYTES", 60_000)
    monkeypatch.setattr(pool, "_spill_dir", lambda: str(tmp_path / "missing"))  # writing there fails
    lines = tricky_lines(1200, seed=3)
    for i in range(6):
        gz(tmp_path / "logs" / f"f{i}.log.gz", lines[i * 200 : (i + 1) * 200])
    both([tmp_path / "logs"], processes=True)
