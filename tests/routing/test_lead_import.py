"""CSV import of leads: every good row stored through intake in bulk, every bad row reported by its line."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from routing.lead_import import LeadImportError, leads_import_csv
from routing.models import Lead, LeadImport
from tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

GOOD = (
    "email,first_name,last_name,company,country,source,external_id,form:Team size,utm_campaign\n"
    "ana@nordwind.de,Ana,Berg,Nordwind,DE,webinar,w-1,50,spring\n"
    "ben@sudhaus.at,Ben,Kurz,Sudhaus,Austria,webinar,w-2,,\n"
    "cleo@westend.ch,Cleo,Mai,Westend,CH,webinar,w-3,200,autumn\n"
)

# Line 3 has a bad e-mail and line 5 an unknown country; lines 2 and 4 are fine.
BAD = (
    "email,company,country\n"
    "ana@nordwind.de,Nordwind,DE\n"
    "not-an-email,Sudhaus,AT\n"
    "cleo@westend.ch,Westend,CH\n"
    "dora@atlantis.example,Atlantis Corp,Atlantis\n"
)


def run(text: str | bytes, *, skip_invalid: bool = False, **kwargs) -> LeadImport:
    data = text.encode() if isinstance(text, str) else text
    return leads_import_csv(
        file=io.BytesIO(data), file_name="leads.csv", created_by=None, skip_invalid=skip_invalid, **kwargs
    )


def test_a_valid_file_becomes_received_leads_linked_to_the_import():
    user = UserFactory(username="revops")
    lead_import = leads_import_csv(
        file=io.BytesIO(GOOD.encode()), file_name="leads.csv", created_by=user, skip_invalid=False
    )

    assert (lead_import.total_rows, lead_import.imported, lead_import.existing, lead_import.rejected) == (3, 3, 0, 0)
    assert lead_import.created_by == user
    leads = Lead.objects.order_by("external_id")
    assert [lead.status for lead in leads] == ["received"] * 3
    assert {lead.lead_import_id for lead in leads} == {lead_import.pk}
    ana = leads[0]
    # The raw payload keeps the row as it came, unknown columns included; form: columns are form answers.
    assert ana.raw_payload == {
        "email": "ana@nordwind.de",
        "first_name": "Ana",
        "last_name": "Berg",
        "company": "Nordwind",
        "country": "DE",
        "source": "webinar",
        "external_id": "w-1",
        "form_answers": {"Team size": "50"},
        "utm_campaign": "spring",
    }
    assert (ana.source, ana.external_id) == ("webinar", "w-1")
    assert "form_answers" not in leads[1].raw_payload  # an empty form cell is no answer


def test_one_bad_row_stores_nothing_and_the_report_names_rows_and_fields():
    lead_import = run(BAD)

    assert not Lead.objects.exists()
    assert (lead_import.total_rows, lead_import.imported, lead_import.rejected) == (4, 0, 2)
    assert [entry["row"] for entry in lead_import.errors] == [3, 5]
    assert lead_import.errors[0]["errors"] == {"email": ["Enter a valid e-mail address."]}
    assert list(lead_import.errors[1]["errors"]) == ["country"]
    assert "Atlantis" in lead_import.errors[1]["errors"]["country"][0]
    # The report is saved even though no lead was.
    assert LeadImport.objects.get().rejected == 2


def test_skip_invalid_stores_the_good_rows_and_reports_the_bad():
    lead_import = run(BAD, skip_invalid=True)

    # Leads are stored as received; standardized columns such as email are filled when they are routed.
    assert sorted(lead.raw_payload["email"] for lead in Lead.objects.all()) == ["ana@nordwind.de", "cleo@westend.ch"]
    assert (lead_import.imported, lead_import.rejected) == (2, 2)
    assert [entry["row"] for entry in lead_import.errors] == [3, 5]


def test_repeated_external_ids_are_counted_as_existing_not_stored_twice():
    LeadFactory(source="webinar", external_id="w-9")
    text = (
        "email,source,external_id\n"
        "a@one.example,webinar,w-1\n"
        "a@one.example,webinar,w-1\n"  # the same lead again in this file
        "b@two.example,webinar,w-9\n"  # already stored before the import
        "c@three.example,partner,w-1\n"  # same id, another source: another lead
    )
    # A chunk of 2 puts the repeat in the first chunk and the rest in the second.
    lead_import = run(text, chunk_size=2)

    assert (lead_import.imported, lead_import.existing, lead_import.rejected) == (2, 2, 0)
    assert Lead.objects.filter(source="webinar", external_id="w-1").count() == 1
    assert Lead.objects.count() == 3


def test_a_byte_order_mark_and_header_case_and_spaces_are_understood():
    text = "\ufeff E-Mail , First Name,COMPANY ,Postal Code, FORM: Budget \nx@prospect.de,Xaver,Prospect,80331,10k\n"
    lead_import = run(text.replace("E-Mail", "Email").encode("utf-8"))

    lead = Lead.objects.get()
    assert lead_import.imported == 1
    assert lead.raw_payload == {
        "email": "x@prospect.de",
        "first_name": "Xaver",
        "company": "Prospect",
        "postal_code": "80331",
        "form_answers": {"Budget": "10k"},
    }


def test_a_text_file_with_quoted_multiline_cells_reports_the_line_where_the_row_starts():
    text = 'email,company,title\n"a@one.example",One,"Head of\nSales"\n\nnope,Two,CTO\n'
    lead_import = leads_import_csv(file=io.StringIO(text), file_name="x.csv", created_by=None, skip_invalid=True)

    assert lead_import.imported == 1
    assert Lead.objects.get().raw_payload["title"] == "Head of\nSales"
    # Line 1 header, lines 2-3 the first row, line 4 blank, line 5 the bad row.
    assert [entry["row"] for entry in lead_import.errors] == [5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The file is empty"),
        ("\ufeff", "The file is empty"),
        ("email,company\n", "no rows"),
        ("colour,size\nred,L\n", "No column is a lead field"),
        ("email,E-mail\n", "name the same field"),
    ],
)
def test_a_file_that_is_no_lead_csv_is_refused_with_a_clear_error(text, message):
    with pytest.raises(LeadImportError, match=message):
        run(text.replace("E-mail", "EMAIL"))
    assert not LeadImport.objects.exists()


def test_a_file_that_is_not_utf8_is_refused():
    with pytest.raises(LeadImportError, match="not UTF-8"):
        run("email,company\nx@m\u00fcller.de,M\u00fcller\n".encode("latin-1"))


def test_a_file_over_the_row_limit_is_refused(monkeypatch):
    monkeypatch.setattr("routing.lead_import.MAX_ROWS", 3)
    with pytest.raises(LeadImportError, match="more than 3 rows"):
        run("email\n" + "".join(f"a{n}@one.example\n" for n in range(4)))
    assert not Lead.objects.exists()


def test_progress_is_reported_as_rows_are_checked():
    calls = []
    run("email\n" + "".join(f"a{n}@one.example\n" for n in range(5)), chunk_size=2, progress=lambda *a: calls.append(a))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_five_thousand_rows_are_stored_with_bulk_inserts(django_assert_max_num_queries):
    text = "email,company,source,external_id\n" + "".join(
        f"lead{n}@prospect{n}.example,Prospect {n},fair,f-{n}\n" for n in range(5000)
    )
    # SQLite takes at most 999 parameters per statement, so a bulk insert of leads is split into batches
    # of a few dozen rows; a row-by-row loop would need at least 5,000 queries.
    with django_assert_max_num_queries(400):
        lead_import = run(text)

    assert lead_import.imported == 5000
    assert Lead.objects.filter(lead_import=lead_import).count() == 5000


# --- The command ----------------------------------------------------------------------------------------


def write(tmp_path, text: str):
    path = tmp_path / "leads.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_command_shows_a_progress_bar_and_the_summary(tmp_path):
    UserFactory(username="revops")
    out, err = io.StringIO(), io.StringIO()

    call_command("import_leads", write(tmp_path, GOOD), "--user", "revops", stdout=out, stderr=err)

    assert "[##############################] 3/3 rows" in err.getvalue()
    assert "3 rows; 3 imported, 0 already there, 0 rejected." in out.getvalue()
    assert LeadImport.objects.get().created_by.username == "revops"


def test_the_command_fails_with_row_numbered_errors_when_any_row_is_bad(tmp_path):
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="Nothing was stored: 2 row"):
        call_command("import_leads", write(tmp_path, BAD), stdout=out, stderr=err)

    assert "Row 3: email: Enter a valid e-mail address." in out.getvalue()
    assert "Row 5: country: Unknown country" in out.getvalue()
    assert not Lead.objects.exists()


def test_the_command_with_skip_invalid_stores_the_rest(tmp_path):
    out = io.StringIO()

    call_command("import_leads", write(tmp_path, BAD), "--skip-invalid", stdout=out, stderr=io.StringIO())

    assert "4 rows; 2 imported, 0 already there, 2 rejected." in out.getvalue()
    assert "Row 3:" in out.getvalue()
    assert Lead.objects.count() == 2


def test_the_command_explains_a_file_it_cannot_import(tmp_path):
    with pytest.raises(CommandError, match="The file is empty"):
        call_command("import_leads", write(tmp_path, ""), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_leads", str(tmp_path / "missing.csv"), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("import_leads", write(tmp_path, GOOD), "--user", "nobody", stdout=io.StringIO())
