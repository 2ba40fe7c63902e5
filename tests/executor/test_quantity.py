"""Kubernetes quantities: parsing, formatting, clear errors."""

import pytest

from flowyard.quantity import format_cpu, format_memory, parse_cpu, parse_memory


@pytest.mark.parametrize("value, cores", [("500m", 0.5), ("2", 2.0), (1.5, 1.5), (3, 3.0),
                                          ("0.25", 0.25), ("100m", 0.1)])
def test_parse_cpu(value, cores):
    assert parse_cpu(value) == pytest.approx(cores)


@pytest.mark.parametrize("value", ["", "2 cores", "-1", "1.5m5", "m", True, float("inf"), -2])
def test_parse_cpu_rejects(value):
    with pytest.raises(ValueError, match="invalid cpu quantity"):
        parse_cpu(value)


@pytest.mark.parametrize("value, nbytes", [
    ("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), ("100M", 10**8),
    ("1k", 1000), ("1Ki", 1024), (2048, 2048), ("1e3", 1000), ("1.5Gi", 3 * 2**29),
    ("0.5", 1), ("123", 123), ("2Ti", 2 * 2**40),
])
def test_parse_memory(value, nbytes):
    assert parse_memory(value) == nbytes


def test_parse_memory_error_says_what_to_do():
    with pytest.raises(ValueError) as info:
        parse_memory("4GB")
    assert str(info.value) == ("invalid memory quantity '4GB': use a number with an optional "
                               "suffix Ki, Mi, Gi, Ti, k, M, G, T")
    for bad in ["", "Gi", "-1Gi", "1 Gi", "4gb", True]:
        with pytest.raises(ValueError, match="invalid memory quantity"):
            parse_memory(bad)


@pytest.mark.parametrize("nbytes, text", [(0, "0"), (1024, "1Ki"), (4 * 2**30, "4Gi"),
                                          (1536 * 2**20, "1536Mi"), (10**9, "1G"),
                                          (1000, "1k"), (1001, "1001")])
def test_format_memory_round_trips(nbytes, text):
    assert format_memory(nbytes) == text
    assert parse_memory(text) == nbytes


def test_format_cpu():
    assert [format_cpu(c) for c in (2.0, 0.5, 0.25, 1.5)] == ["2", "0.5", "250m", "1.5"]
