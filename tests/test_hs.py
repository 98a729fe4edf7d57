import math

import pytest

from dualuse.hs import HS2017, HS2022, hs_description, parse_hs


@pytest.mark.parametrize(
    "raw, digits",
    [
        ("8542.31", "854231"),
        ("854231", "854231"),
        ("8542 31 00 00", "8542310000"),
        ("8542310000", "8542310000"),
        ("'8806'", "8806"),
        (8542.0, "8542"),
        (8542, "8542"),
        ("HS 8806.22", "880622"),
        ("hs8806.22", "880622"),
        ("ТН ВЭД 8806220000", "8806220000"),
        ("8806.22.00", "88062200"),
        ("  8471.30  ", "847130"),
        ("8542-31", "854231"),
    ],
)
def test_formats_normalise_to_digits(raw, digits):
    code = parse_hs(raw)
    assert code.digits == digits
    assert code.valid
    assert "invalid_hs" not in code.flags
    assert code.edition == HS2022
    assert code.raw is not None


@pytest.mark.parametrize("raw", [None, float("nan"), "", "   ", "N/A", "n/a", "-", "null"])
def test_missing_values_are_not_flagged(raw):
    code = parse_hs(raw)
    assert code.digits is None
    assert code.flags == ()
    assert code.missing


@pytest.mark.parametrize("raw", ["garbage", "XX12", "85ab", "1234567890123", "7", "7700", "HS CODE UNKNOWN", "8542.31 / 8541"])
def test_garbage_is_flagged_invalid(raw):
    code = parse_hs(raw)
    assert code.digits is None
    assert code.flags == ("invalid_hs",)
    assert not code.missing


def test_original_is_kept():
    assert parse_hs("HS 8806.22").raw == "HS 8806.22"
    assert parse_hs(8542.0).raw == "8542"


def test_lost_leading_zero_from_spreadsheet_is_restored_and_flagged():
    code = parse_hs(101)
    assert code.digits == "0101"
    assert "hs_zero_padded" in code.flags
    assert parse_hs(30490).digits == "030490"


def test_float_losing_trailing_zero():
    # 8542.30 typed into a spreadsheet shows as 8542.3
    assert parse_hs(8542.3).digits == "854230"


def test_hs2017_codes_are_mapped_to_hs2022():
    parts = parse_hs("8803.30")
    assert parts.digits == "880730"
    assert parts.edition == HS2017
    assert "hs2017_mapped" in parts.flags
    cams = parse_hs("8525.80.30")
    assert cams.digits.startswith("852589") and cams.edition == HS2017


def test_unknown_subheading_is_flagged_but_kept():
    code = parse_hs("8542.77")
    assert code.digits == "854277"
    assert "unknown_hs_subheading" in code.flags


def test_formatted_and_hs6():
    code = parse_hs("8542310000")
    assert code.formatted() == "8542.31.00.00"
    assert code.hs6 == "854231"
    assert parse_hs("8542").hs6 is None


def test_description_lookup():
    assert "Unmanned aircraft" in hs_description("880622")
    assert hs_description("8542999999") is not None  # falls back to the heading
    assert hs_description(None) is None


def test_numpy_and_pandas_scalars():
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    assert parse_hs(np.int64(8806)).digits == "8806"
    assert parse_hs(np.float64(8542.0)).digits == "8542"
    assert parse_hs(pd.NA).digits is None
    assert parse_hs(np.float64(math.nan)).flags == ()
