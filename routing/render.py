"""Text for people from stored JSON: form answers, page history, raw payloads, receipts.

Pages, admin, e-mail and Slack show these fields as they were stored, and what was stored is not bounded by
today's intake limits: older rows, CSV imports and direct writes may hold JSON nested hundreds of levels deep,
strings of a million characters, NULs, lone surrogates or non-string keys. So every function here walks its
value without recursion, shows at most ``MAX_DEPTH`` levels, ``MAX_ITEMS`` entries per list or object and
``MAX_STRING_CHARS`` characters per string, marks each cut with "…", and never raises. The output is plain
text: templates and ``format_html`` escape it for HTML, and the Slack code escapes it for mrkdwn.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from itertools import islice
from typing import Any, NamedTuple

# Levels of nesting shown; deeper lists and objects read "[…]" and "{…}".
MAX_DEPTH = 8
# Entries shown per list or object; the rest are counted.
MAX_ITEMS = 100
# Characters shown per string; the rest are counted.
MAX_STRING_CHARS = 2_000
# Characters of one JSON block (an admin field, the raw receipt).
MAX_BLOCK_CHARS = 100_000
# Characters of a question or an object key.
MAX_KEY_CHARS = 200

ELLIPSIS = "…"
# NUL and the other control characters (tabs and line breaks excepted) do not belong in a page or an e-mail,
# and a lone surrogate cannot be encoded as UTF-8 at all: each is shown as U+FFFD.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def _plain(value: Any) -> str:
    """``str(value)`` for a scalar, or a placeholder when even that fails (an int past Python's digit limit,
    an object whose ``__str__`` raises)."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def safe_text(value: Any, limit: int = MAX_STRING_CHARS) -> str:
    """A scalar as text: at most ``limit`` characters (the rest counted after "…"), unshowable characters
    replaced."""
    text = _plain(value)
    extra = len(text) - limit
    if extra > 0:
        text = text[:limit]
    text = _UNSHOWABLE.sub(REPLACEMENT, text)
    return f"{text}{ELLIPSIS} ({extra:,} more characters)" if extra > 0 else text


def _scalar_json(value: Any, limit: int) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return json.dumps(value)
        except Exception:
            return json.dumps(safe_text(value, limit), ensure_ascii=False)
    # Strings, and what a receipt may hold besides JSON (dates, decimals), as JSON strings.
    return json.dumps(safe_text(value, limit), ensure_ascii=False)


def _key_text(key: Any) -> str:
    return safe_text(key if isinstance(key, str) else _scalar_json(key, MAX_KEY_CHARS), MAX_KEY_CHARS)


class _Node(NamedTuple):
    value: Any
    level: int


def json_text(
    value: Any,
    *,
    indent: int | None = 2,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    max_string: int = MAX_STRING_CHARS,
    max_chars: int = MAX_BLOCK_CHARS,
) -> str:
    """``value`` as JSON text, indented (or on one line with ``indent=None``), within the limits.

    Objects with up to ``max_items`` keys are sorted by key; larger ones keep their stored order. What is cut
    says so: ``"…"`` for a level too deep, ``"… 12 more items"`` for a long list, ``"… (900 more
    characters)"`` inside a long string, and a last line when the whole block reached ``max_chars``.

    Walks an explicit stack: each step pops either literal text or a value to open; a list or an object
    pushes its closing bracket, its entries and the separators between them in reverse, so they pop in order.
    """
    out: list[str] = []
    size = 0
    stack: list[str | _Node] = [_Node(value, 0)]
    while stack:
        item = stack.pop()
        piece = item if isinstance(item, str) else _open(item, stack, indent, max_depth, max_items, max_string)
        out.append(piece)
        size += len(piece)
        if size > max_chars:
            return "".join(out)[:max_chars] + f"\n{ELLIPSIS} (cut at {max_chars:,} characters)"
    return "".join(out)


def _open(
    node: _Node, stack: list[str | _Node], indent: int | None, max_depth: int, max_items: int, max_string: int
) -> str:
    value, level = node
    if isinstance(value, dict):
        opening, closing, noun = "{", "}", "keys"
    elif isinstance(value, list | tuple):
        opening, closing, noun = "[", "]", "items"
    else:
        return _scalar_json(value, max_string)
    count = len(value)
    if count == 0:
        return opening + closing
    if level >= max_depth:
        return f"{opening}{ELLIPSIS}{closing}"
    entries: list[Any] = list(islice(value.items() if isinstance(value, dict) else value, max_items))
    if isinstance(value, dict) and count <= max_items:
        entries.sort(key=lambda entry: _key_text(entry[0]))
    newline = "" if indent is None else "\n" + " " * (indent * (level + 1))
    separator = "," if indent is not None else ", "
    parts: list[str | _Node] = []
    for index, entry in enumerate(entries):
        before = (separator if index else "") + newline
        if isinstance(value, dict):
            key, entry_value = entry
            parts.append(before + json.dumps(_key_text(key), ensure_ascii=False) + ": ")
            parts.append(_Node(entry_value, level + 1))
        else:
            parts.append(before)
            parts.append(_Node(entry, level + 1))
    if count > len(entries):
        parts.append(f'{separator}{newline}"{ELLIPSIS} {count - len(entries):,} more {noun}"')
    parts.append(("" if indent is None else "\n" + " " * (indent * level)) + closing)
    stack.extend(reversed(parts))
    return opening


def inline_text(value: Any, limit: int = MAX_STRING_CHARS) -> str:
    """One value on one line, as a rep reads a form answer: ``""`` for null, a string as typed, a list as
    "a, b, c" (anything nested inside it as JSON), an object as JSON; at most ``limit`` characters."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json_text(value, indent=None, max_chars=limit)
    if not isinstance(value, list | tuple):
        return safe_text(value, limit)
    shown = list(islice(value, MAX_ITEMS))
    parts = []
    for item in shown:
        if item is None:
            parts.append("")
        elif isinstance(item, dict | list | tuple):
            parts.append(json_text(item, indent=None, max_depth=MAX_DEPTH - 1, max_chars=limit))
        else:
            parts.append(safe_text(item, limit))
    more = len(value) - len(shown)
    text = ", ".join(parts) + (f", {ELLIPSIS} {more:,} more" if more > 0 else "")
    return safe_text(text, limit)


def form_answer_pairs(answers: Any) -> list[tuple[str, str]]:
    """The form answers as (question, answer) lines, from an object ``{"question": answer}`` or a list of
    ``{"question"|"name"|"key": …, "answer"|"value": …}``; anything else shows nothing. At most ``MAX_ITEMS``
    answers, then one line counting the rest."""
    if isinstance(answers, dict):
        items: list[tuple[Any, Any]] = list(islice(answers.items(), MAX_ITEMS))
    elif isinstance(answers, list):
        items = [
            (item.get("question") or item.get("name") or item.get("key") or "", item.get("answer", item.get("value")))
            if isinstance(item, dict)
            else ("", item)
            for item in islice(answers, MAX_ITEMS)
        ]
    else:
        return []
    pairs = [(inline_text(question, MAX_KEY_CHARS), inline_text(answer)) for question, answer in items]
    more = len(answers) - len(items)
    if more > 0:
        pairs.append((ELLIPSIS, f"{more:,} more answers not shown"))
    return pairs


def page_history_lines(pages: Any) -> list[str]:
    """The pages the lead visited, one line each ("at — title — url"); at most ``MAX_ITEMS``, then one line
    counting the rest."""
    if not isinstance(pages, list):
        return []
    lines = []
    for page in islice(pages, MAX_ITEMS):
        if isinstance(page, dict):
            url = inline_text(page.get("url") or page.get("path"))
            title = inline_text(page.get("title"))
            at = inline_text(page.get("at") or page.get("visited_at") or page.get("timestamp"))
            # An object without any of these keys is shown as it is rather than dropped.
            line = " — ".join(part for part in (at, title, url) if part) or inline_text(page)
        else:
            line = inline_text(page)
        if line:
            lines.append(line)
    more = len(pages) - MAX_ITEMS
    if more > 0:
        lines.append(f"{ELLIPSIS} {more:,} more pages not shown")
    return lines


def one_line(text: str) -> str:
    """``text`` on one line: header values (an e-mail subject) and titles must not contain line breaks."""
    return " ".join(text.split())


def lead_name(lead: Any) -> str:
    """ "Jane Doe", else the e-mail, else "Unnamed lead"."""
    return (
        one_line(" ".join(part for part in (lead.first_name, lead.last_name) if part)) or lead.email or "Unnamed lead"
    )


def lead_label(lead: Any) -> str:
    """ "Jane Doe (Acme)", or just the name when the company is unknown."""
    company = one_line(lead.company)
    return f"{lead_name(lead)} ({company})" if company else lead_name(lead)


# How a closed lead's status reads in a sentence: "Lead disqualified: no budget".
CLOSED_AS = {
    "disqualified": "disqualified",
    "nurture": "sent to nurture",
    "converted": "converted (won)",
    "closed": "closed",
}


def closed_as(status: str) -> str:
    """ "disqualified", "sent to nurture", "converted (won)": a closed status as the end of "Lead …"."""
    return CLOSED_AS.get(status, status)


# --- The receipt as a rep reads it --------------------------------------------------------------------------
# The stored receipt speaks the router's language (queue ids, method keys, ISO timestamps, rule conditions
# such as "account.is_customer = True"). The rep's lead page shows it in plain words; the raw receipt stays
# one click away for RevOps.

RULE_RESULTS = {"matched": "matched", "not matched": "did not match", "skipped": "could not be carried out"}
MATCH_METHODS = {"email_domain": "e-mail domain", "website": "website", "company_name": "company name"}


def _parsed_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in islice(value, MAX_ITEMS) if isinstance(item, dict)] if isinstance(value, list) else []


def receipt_for_people(receipt: Any, *, method_labels: dict[str, str], account_name: str = "") -> dict[str, Any]:
    """What routing decided for a lead, in plain words: the summary, each rule by name with matched or not
    (not its condition), the territory, the account owner step, each queue with its method's label and every
    candidate's reason, the score, enrichment and account match, and when it was decided (a datetime for the
    page to show in the reader's zone). Never raises; unknown shapes show less."""
    receipt = _dict(receipt)
    routing = _dict(receipt.get("routing"))
    territory = _dict(routing.get("territory"))
    chosen = _dict(territory.get("chosen"))
    covered = _dict(territory.get("covered_by"))
    account_step = _dict(routing.get("account"))
    score = _dict(receipt.get("score"))
    match = _dict(receipt.get("account"))
    enrichment = _dict(receipt.get("enrichment"))
    summary = routing.get("summary") or (f"{routing['result']}." if routing.get("result") else "")
    queues = [
        {
            "name": safe_text(step.get("queue", ""), MAX_KEY_CHARS),
            "method": method_labels.get(str(step.get("method")), ""),
            "result": safe_text(step.get("result", ""), MAX_KEY_CHARS),
            "candidates": [
                {
                    "name": safe_text(line.get("username") or "a rep no longer here", MAX_KEY_CHARS),
                    "eligible": bool(line.get("eligible")),
                    "reason": safe_text(line.get("reason", ""), MAX_KEY_CHARS),
                }
                for line in _dicts(step.get("candidates"))
            ],
        }
        for step in _dicts(routing.get("queue_path"))
    ]
    matched_on = f" on “{safe_text(match['matched_on'], MAX_KEY_CHARS)}”" if match.get("matched_on") else ""
    if match.get("account_id"):
        how = MATCH_METHODS.get(str(match.get("method")), "a match")
        account_match = f"{account_name or 'an account'}, found by {how}{matched_on}"
        if match.get("weak"):
            account_match += " (a weak match: shown for review, not used for ownership)"
    else:
        account_match = safe_text(match.get("result") or "no account matched", MAX_KEY_CHARS)
    filled = _dict(enrichment.get("filled"))
    return {
        "summary": safe_text(summary),
        "rules": [
            {
                "name": safe_text(line.get("name", ""), MAX_KEY_CHARS),
                "result": RULE_RESULTS.get(str(line.get("result")), safe_text(line.get("result", ""), MAX_KEY_CHARS)),
            }
            for line in _dicts(routing.get("rules"))
        ],
        "rules_evaluated": routing.get("rules") is not None,
        "via_account": routing.get("via") == "account",
        "territory": safe_text(chosen.get("name", ""), MAX_KEY_CHARS),
        "covered_by": safe_text(covered.get("territory", ""), MAX_KEY_CHARS),
        "account_step": safe_text(account_step.get("result", ""), MAX_KEY_CHARS),
        "queues": queues,
        "winner": safe_text((routing.get("winner") or {}).get("username", ""), MAX_KEY_CHARS)
        if isinstance(routing.get("winner"), dict)
        else "",
        "score": score.get("total"),
        "fit": score.get("fit"),
        "intent": score.get("intent"),
        "disposition": safe_text(score.get("disposition") or score.get("result") or "", MAX_KEY_CHARS),
        "enriched": [
            f"{safe_text(name, MAX_KEY_CHARS)} from {safe_text(provider, MAX_KEY_CHARS)}"
            for name, provider in islice(filled.items(), MAX_ITEMS)
        ],
        "account_match": account_match,
        "decided_at": _parsed_time(routing.get("decided_at")),
        "elapsed_ms": receipt.get("elapsed_ms"),
    }


def how_it_became_theirs(*, reason: str, note: str, owner: str, by: str, queue: str) -> str:
    """One sentence on how the lead's current owner got it, from their assignment: taken from a shared queue
    (the note "take next" writes), reassigned by a manager or by the SLA ladder, handed over at a departure,
    reopened, or routed. Empty for a routed lead (the routing summary says it)."""
    said = f": “{note}”" if note else "."
    if reason == "routed" and note == "taken from the queue":
        return f"{owner} took it from the shared queue {queue}." if queue else f"{owner} took it from a shared queue."
    if reason == "manual":
        return f"Reassigned to {owner} by {by or 'a manager'}{said}"
    if reason == "escalation":
        return f"Reassigned to {owner} by the SLA escalation ladder{said}"
    if reason == "departure":
        return f"Handed over to {owner} when its previous owner left{said}"
    if reason == "reopened":
        return f"Reopened for {owner} by {by or 'someone'}{said}"
    return ""
