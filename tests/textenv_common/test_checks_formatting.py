import numpy as np
import pytest

from textenv_common.checks import check_int
from textenv_common.formatting import format_number


class _MyError(Exception):
    pass


@pytest.mark.parametrize("value", [1, 5, np.int64(3)])
def test_check_int_accepts_integers_at_or_above_low(value: object) -> None:
    check_int("n", value, 1)


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "3", None])
def test_check_int_names_the_setting_and_raises_the_callers_error(value: object) -> None:
    with pytest.raises(_MyError, match=r"sft\.batch_size must be an integer ≥ 1; got "):
        check_int("sft.batch_size", value, 1, error=_MyError)


@pytest.mark.parametrize("value", [1.5, True, "3", None])
def test_check_int_type_error_is_raised_for_a_value_that_is_not_an_integer(value: object) -> None:
    with pytest.raises(TypeError, match=r"target must be an integer ≥ 0; got "):
        check_int("target", value, 0, type_error=TypeError)


def test_check_int_with_type_error_still_raises_error_for_an_integer_out_of_range() -> None:
    with pytest.raises(_MyError, match=r"target must be an integer ≥ 0; got -1\."):
        check_int("target", -1, 0, error=_MyError, type_error=TypeError)


def test_check_int_optional_allows_none() -> None:
    check_int("limit", None, 1, optional=True)


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.12345, 3, "0.123"),
        (1.5, 1, "1.5"),
        (1234.5, 3, "1,234"),
        (2.5e6, 3, "2.50e+06"),
        (-0.5, 2, "-0.50"),
        (7, 3, "7"),
        (np.int64(123456), 3, "123456"),
        (np.float32(0.25), 3, "0.250"),
        (float("nan"), 3, "—"),
        (float("inf"), 3, "—"),
        (None, 3, "—"),
        ("n/a", 3, "n/a"),
    ],
)
def test_format_number(value: object, digits: int, text: str) -> None:
    assert format_number(value, digits) == text
