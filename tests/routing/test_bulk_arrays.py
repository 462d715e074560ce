"""Set-based writes send each column as one binary array built here (routing/bulk.py ``_array_encode``) rather
than by psycopg's list dumper: PostgreSQL must read back exactly the values psycopg would have sent."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import models
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import bulk
from routing.bulk import EncodedArray, pg_execute
from routing.fields import CompactJSONField, unpack

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=30)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=10,
)
INSTANTS = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1), timezones=st.sampled_from([dt.UTC])
)
COLUMNS = [
    (models.BigIntegerField(), "bigint", st.integers(-(2**63), 2**63 - 1)),
    (models.IntegerField(), "integer", st.integers(-(2**31), 2**31 - 1)),
    (models.SmallIntegerField(), "smallint", st.integers(-(2**15), 2**15 - 1)),
    (models.FloatField(), "double precision", st.floats(allow_nan=False)),
    (models.BooleanField(), "boolean", st.booleans()),
    (models.TextField(), "text", TEXT),
    (models.CharField(max_length=30), "varchar(30)", TEXT),
    (models.DateTimeField(), "timestamp with time zone", INSTANTS),
    (models.JSONField(), "jsonb", JSON.filter(lambda value: value is not None)),
]


def _read_back(sql_type, parameter):
    return pg_execute(f"SELECT %b::{sql_type}[]", [parameter], fetch=True)[0][0]


@pytest.mark.parametrize(("field", "sql_type", "values"), COLUMNS, ids=[column[1] for column in COLUMNS])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_an_encoded_column_reads_back_as_the_list_psycopg_would_send(field, sql_type, values, data):
    column = data.draw(st.lists(st.none() | values, max_size=6))
    encoded = bulk._array_encode(sql_type, field, column)

    assert isinstance(encoded, EncodedArray)
    assert _read_back(sql_type, encoded) == _read_back(sql_type, bulk._column_values_as_list(field, column))


def test_a_receipt_column_is_stored_packed():
    receipts = [{"outcome": "assigned", "n": 1}, None, {"routing": {"summary": "é"}}]
    encoded = bulk._array_encode("bytea", CompactJSONField(), receipts)

    stored = _read_back("bytea", encoded)
    assert [None if value is None else unpack(bytes(value)) for value in stored] == receipts


@pytest.mark.parametrize(
    ("field", "sql_type", "column"),
    [
        (models.DateTimeField(), "timestamp with time zone", [dt.datetime(2026, 12, 5, 10, 0)]),  # naive
        (models.IntegerField(), "integer", [True]),
        (models.IntegerField(), "integer", [2**40]),
        (models.TextField(), "text", [5]),
        (models.DecimalField(max_digits=9, decimal_places=2), "numeric(9, 2)", [Decimal("1.50")]),
        (models.JSONField(), "jsonb", [models.Value(1)]),
    ],
    ids=["naive datetime", "boolean as integer", "integer out of range", "number as text", "numeric", "expression"],
)
def test_what_the_encoder_does_not_know_is_left_to_psycopg(field, sql_type, column):
    assert bulk._array_encode(sql_type, field, column) is None


def test_an_empty_column_is_an_empty_array():
    assert _read_back("bigint", bulk._array_encode("bigint", models.BigIntegerField(), [])) == []
