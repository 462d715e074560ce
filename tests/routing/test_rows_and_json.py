"""The hot path's plain readers and JSON writers give what the ORM and the json module give.

Routing reads a batch's leads with one plain statement (routing/rows.py), builds their instances without
``Model.__init__``, and writes JSON with orjson (routing/fields.py, routing/bulk.py). These tests hold each
shortcut to the result of the path it replaces.
"""

import datetime as dt
import json
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models.signals import post_init
from hypothesis import example, given
from hypothesis import strategies as st

from routing import fields
from routing.bulk import rows_update
from routing.models import Lead
from routing.rows import RowSelect, rows_select, sql_ids_in
from tests.factories import LeadFactory

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text() | st.integers() | st.booleans(), children, max_size=4)
    ),
    max_leaves=20,
)


def _as_json_reads_it(value):
    return json.loads(json.dumps(value))


@given(JSON_VALUES)
@example({1: "a", False: "b", None: "c", 2.5: "d"})
@example({"big": 2**70, "negative": -(2**65)})
@example("line\u2028separator, é, \x00")
def test_the_fast_json_writer_writes_what_json_dumps_writes(value):
    assert json.loads(fields.json_bytes(value)) == _as_json_reads_it(value)


def test_the_fast_json_writer_refuses_what_json_dumps_refuses():
    with pytest.raises(TypeError):
        fields.json_bytes({"at": dt.datetime(2026, 12, 5, tzinfo=dt.UTC)})
    with pytest.raises(TypeError):
        fields.json_bytes({"what": object()})


@given(JSON_VALUES)
@example({"big": 2**70})
# Beyond 64 bits and not a float exactly: orjson alone reads these as the nearest float.
@example({"big": 2**64 + 1, "negative": -(2**63) - 1, "in text": "12345678901234567890"})
def test_a_packed_receipt_unpacks_to_the_same_value(value):
    assert fields.unpack(fields.pack(value)) == _as_json_reads_it(value)


def test_receipts_packed_in_the_first_format_still_unpack():
    """Receipts stored before Zstandard were packed with json.dumps and zlib (format 1): the format byte and
    that format's dictionary are what unpacking needs, and they did not change."""
    receipt = {"outcome": "assigned", "routing": {"summary": "Assigned to anna in DACH Inbound.", "rules": [1, 2]}}
    packer = zlib.compressobj(3, zlib.DEFLATED, fields.WINDOW_BITS, 8, zlib.Z_DEFAULT_STRATEGY, fields.DICTIONARIES[1])
    text = json.dumps(receipt, separators=(",", ":"), ensure_ascii=False).encode()
    old = bytes([1]) + packer.compress(text) + packer.flush()

    assert fields.unpack(old) == receipt


def test_a_receipt_is_packed_small_and_from_many_threads_at_once():
    """A typical receipt (2 KB of JSON) packs to a few hundred bytes at most; web threads read receipts side
    by side, each with its own Zstandard context."""
    receipt = {
        "outcome": "assigned",
        "standardization_flags": {},
        "enrichment": {"result": "nothing to enrich"},
        "account": {"result": "no account matched"},
        "score": {"fit": 40, "intent": 25, "total": 65, "disposition": "sales"},
        "routing": {
            "decided_at": "2026-12-05T10:00:00+00:00",
            "rules": [{"id": n, "name": f"Rule {n}", "action": "territory", "result": "not matched"} for n in range(6)],
            "queue_path": [{"queue_id": 3, "queue": "DACH Inbound", "candidates": [{"rep_id": 7, "eligible": True}]}],
            "winner": {"rep_id": 7, "username": "anna"},
            "summary": "Assigned to anna in DACH Inbound by rule 'DACH'.",
        },
    }
    packed = fields.pack(receipt)

    assert packed[0] == fields.CURRENT_FORMAT == 2
    assert len(packed) < len(json.dumps(receipt)) / 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        values = [{**receipt, "n": n} for n in range(400)]
        assert list(pool.map(lambda value: fields.unpack(fields.pack(value)), values)) == values


@pytest.mark.django_db
def test_plain_rows_are_the_instances_the_orm_reads():
    # A customer's number beyond 64 bits comes back as the integer it was, not the nearest float.
    payload = {"email": "x@acme.example", "answers": [1, {"a": None}], "account_number": -(2**63) - 1}
    lead = LeadFactory(raw_payload=payload, flags={"phone": "bad"})
    lead.receipt = {"outcome": "queued", "n": 2**70, "m": 2**64 + 1}
    lead.save()

    [plain] = rows_select(RowSelect(Lead), "t0.id = %s", [lead.pk])
    orm = Lead.objects.get(pk=lead.pk)

    assert plain.raw_payload == payload
    assert plain.receipt["m"] == 2**64 + 1

    for model_field in Lead._meta.concrete_fields:
        assert getattr(plain, model_field.attname) == getattr(orm, model_field.attname), model_field.attname
    # Timestamps come back in the same zone as the ORM's (on PostgreSQL, read by psycopg's own loader).
    assert plain.received_at.tzinfo is orm.received_at.tzinfo
    assert plain == orm
    assert (plain._state.adding, plain._state.db) == (False, "default")
    assert plain.get_deferred_fields() == set()


@pytest.mark.django_db
def test_a_column_left_out_is_deferred_and_reads_on_first_use():
    lead = LeadFactory()
    lead.receipt = {"outcome": "assigned"}
    lead.save()

    [plain] = rows_select(RowSelect(Lead, omit=("receipt",)), "t0.id = %s", [lead.pk])

    assert plain.get_deferred_fields() == {"receipt"}
    assert plain.receipt == {"outcome": "assigned"}
    assert plain.get_deferred_fields() == set()


@pytest.mark.django_db
def test_a_model_with_init_receivers_is_built_through_its_init():
    lead = LeadFactory()
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    post_init.connect(receiver, sender=Lead)
    try:
        [plain] = rows_select(RowSelect(Lead), "t0.id = %s", [lead.pk])
    finally:
        post_init.disconnect(receiver, sender=Lead)

    assert seen == [lead.pk]
    assert plain.pk == lead.pk


@pytest.mark.django_db
def test_set_based_writes_store_json_as_the_orm_stores_it():
    written, saved = LeadFactory(), LeadFactory()
    flags = {"phone": "unparseable", 7: [1.5, None, True], "nested": {"é": "\u2028"}}
    for lead in (written, saved):
        lead.flags = flags
        lead.enrichment_sources = {"big": 2**70}
    rows_update(Lead, [written], ["flags", "enrichment_sources"])
    saved.save(update_fields=["flags", "enrichment_sources"])

    stored = {lead.pk: lead for lead in Lead.objects.filter(pk__in=[written.pk, saved.pk])}
    assert stored[written.pk].flags == stored[saved.pk].flags == _as_json_reads_it(flags)
    assert stored[written.pk].enrichment_sources == stored[saved.pk].enrichment_sources == {"big": 2**70}


@pytest.mark.django_db
def test_a_list_of_ids_finds_those_rows_and_no_others():
    leads = LeadFactory.create_batch(4)
    wanted = [leads[0].pk, leads[2].pk]

    among, params = sql_ids_in("t0.id", wanted)
    assert {lead.pk for lead in rows_select(RowSelect(Lead), among, params)} == set(wanted)
    among, params = sql_ids_in("t0.id", [])
    assert rows_select(RowSelect(Lead), among, params) == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_list_of_ids_is_compared_as_bigint_so_the_database_can_hash_it():
    # psycopg sends small ids as int4[]: bigint = ANY(int4[]) is then tested element by element on each row
    # (a claim of 1,000 leads took 10 ms for it, against 1 ms with one type).
    lead = LeadFactory()
    among, params = sql_ids_in("id", [lead.pk, lead.pk + 1])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN SELECT id FROM {Lead._meta.db_table} WHERE status = 'closed' AND {among}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "bigint[]" in plan
