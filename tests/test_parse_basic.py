"""Basic parser behaviour; the conformance and property suites live in their own modules."""

from __future__ import annotations

import gzip

import pytest

from albstats.parse import BadLine, ParseStats, iter_batches, parse_line, tokenize
from albstats.schema import ACCESS

LINE = (
    "http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 "
    '0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - '
    "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "
    '"Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" '
    '"10.0.0.1:80" "200" "-" "-"'
)


def test_values_follow_athena():
    row = dict(zip(ACCESS.names, parse_line(LINE)))
    assert row["client_ip"] == "192.168.131.39" and row["client_port"] == 2817
    assert row["request_verb"] == "GET" and row["request_proto"] == "HTTP/1.1"
    assert row["target_status_code"] == "200" and row["elb_status_code"] == 200
    assert row["domain_name"] == "-" and row["conn_trace_id"] is None and row["extra_fields"] is None


def test_escaped_quote_kept_as_logged():
    toks = tokenize('a "x \\"y\\" z" b')
    assert [t for t, _ in toks] == ["a", 'x \\"y\\" z', "b"]


def test_quote_without_space_is_bad():
    with pytest.raises(BadLine):
        tokenize('a "-"1 b')


def test_corrupt_gzip_keeps_good_lines(tmp_path):
    data = gzip.compress(("\n".join([LINE] * 2000) + "\n").encode())
    p = tmp_path / "x.log.gz"
    p.write_bytes(data[: len(data) // 2])
    stats = ParseStats()
    rows = sum(b.num_rows for b in iter_batches([str(p)], stats=stats))
    assert 0 < rows < 2000
    assert stats.errors and str(p) in stats.errors[0]
