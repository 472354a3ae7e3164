"""CSV cells a spreadsheet reads as data (finding 9) and download names that cannot break the header (finding 10)."""

from __future__ import annotations

import csv
import io

import pytest

from billing.api.downloads import attachment
from billing.csv_safe import cell, writer


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '"\'=HYPERLINK(""http://x"")"'),
        ("+1+2", '"\'+1+2"'),
        ("-2+3", '"\'-2+3"'),
        ("@SUM(A1)", '"\'@SUM(A1)"'),
        ("\tcmd", '"\'\tcmd"'),
        ("\rcmd", '"\'\rcmd"'),
        ("-12.50", "-12.50"),  # a credit stays a number
        ("+3", "+3"),
        ("svc_a", "svc_a"),
        ("a,b", '"a,b"'),
        (None, ""),
        (42, "42"),
    ],
)
def test_formula_cells_are_prefixed_and_quoted_and_numbers_stay_numbers(value: object, written: str) -> None:
    assert cell(value) == written


def test_the_writer_reads_back_as_csv_with_the_quote_in_front() -> None:
    out = io.StringIO()
    writer(out).writerows([["service_id", "amount"], ["=cmd|' /C calc'!A0", "-5.00"], ["a\nb", "1"]])

    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["service_id", "amount"],
        ["'=cmd|' /C calc'!A0", "-5.00"],
        ["a\nb", "1"],
    ]


@pytest.mark.parametrize("name", ['statement-a"; filename="evil.exe-2026-03.csv', "usage-café-☃-2026-03.csv", "x\r\ny"])
def test_a_download_name_never_injects_a_parameter_and_is_latin_1_safe(name: str) -> None:
    header = attachment(name)["Content-Disposition"]

    header.encode("latin-1")  # what Starlette does with a header: must never fail
    assert header.count(";") == 2 and header.count('"') == 2 and "\r" not in header and "\n" not in header
    fallback = header.split('filename="')[1].split('"')[0]
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in fallback)


def test_a_plain_name_is_the_same_in_both_parameters() -> None:
    assert attachment("usage-acc_1-2026-03.csv") == {
        "Content-Disposition": 'attachment; filename="usage-acc_1-2026-03.csv"; '
        "filename*=UTF-8''usage-acc_1-2026-03.csv"
    }
