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
from routing.models import Assignment, Lead
from tests.factories import LeadFactory, RepFactory

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


def test_columns_that_hold_one_value_throughout_are_written_as_every_other_column():
    """A column whose rows all hold one value travels once; what is stored is the same, row by row, as when
    every column travels whole: constants of every kind (blank, null, JSON, receipt, instant), beside
    columns that differ, in an update and in an insert that answers its keys in row order."""
    leads = [LeadFactory(), LeadFactory(), LeadFactory()]
    now = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)
    for number, lead in enumerate(leads):
        lead.company = "Acme"  # the same
        lead.title = f"Head of Sales {number}"  # differs
        lead.phone = ""  # blank throughout
        lead.employees = None  # null throughout
        lead.flags = {"phone": "unparseable"}
        lead.receipt = {"outcome": "assigned", "routing": {"summary": "Assigned"}}
        lead.routed_at = now
        lead.routing_attempts = 1
    leads[2].flags = {}  # one row differs: the column travels whole
    bulk.rows_update(
        Lead, leads, ["company", "title", "phone", "employees", "flags", "receipt", "routed_at", "routing_attempts"]
    )

    stored = {lead.pk: lead for lead in Lead.objects.filter(pk__in=[lead.pk for lead in leads])}
    for number, lead in enumerate(leads):
        row = stored[lead.pk]
        assert (row.company, row.title, row.phone, row.employees) == ("Acme", f"Head of Sales {number}", "", None)
        assert row.flags == ({} if number == 2 else {"phone": "unparseable"})
        assert row.receipt == {"outcome": "assigned", "routing": {"summary": "Assigned"}}
        assert (row.routed_at, row.routing_attempts) == (now, 1)

    rep = RepFactory()
    keys = bulk.rows_insert(
        Assignment,
        [(lead.pk, rep.pk, Assignment.Reason.ROUTED, "routed", now, {}) for lead in leads],
        ["lead", "rep", "reason", "note", "assigned_at", "receipt"],
        returning_pk=True,
    )
    inserted = {row.pk: row for row in Assignment.objects.filter(pk__in=keys)}
    assert [inserted[key].lead_id for key in keys] == [lead.pk for lead in leads]
    assert {(row.rep_id, row.reason, row.note, row.assigned_at) for row in inserted.values()} == {
        (rep.pk, Assignment.Reason.ROUTED, "routed", now)
    }


def test_identical_rows_and_a_boolean_among_integers_are_not_folded():
    # Every column constant: nothing would be left to unnest, so every column travels whole.
    assert bulk._folded([models.IntegerField()] * 2, [[1, 1], ["a", "a"]], keep=0)[2] == [0, 1]
    # Equal but of another type: sent whole, where the encoder leaves it to psycopg as before.
    assert not bulk._constant([1, True])
    assert not bulk._constant([1])
    assert bulk._constant([None, None]) and bulk._constant([{"a": 1}, {"a": 1}])


def test_rows_with_a_field_not_loaded_are_written_with_it_read_on_first_use():
    # Leads read without their title (a deferred field): the write reads it as the instance would.
    leads = [LeadFactory(title="Head of Sales 0"), LeadFactory(title="CFO")]
    loaded = list(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).defer("title").order_by("pk"))
    for lead in loaded:
        lead.company = "Acme"
    bulk.rows_update(Lead, loaded, ["company", "title"])

    stored = Lead.objects.filter(pk__in=[lead.pk for lead in leads]).order_by("pk")
    assert [(row.company, row.title) for row in stored] == [("Acme", "Head of Sales 0"), ("Acme", "CFO")]
    # One field alone, every row loaded.
    bulk.rows_update(Lead, loaded, ["company"])
    assert set(stored.values_list("company", flat=True)) == {"Acme"}
