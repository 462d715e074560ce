"""A company name without its legal form: ``basename("Nordwind Logistik GmbH")`` → "Nordwind Logistik".

The answer is cleanco's ``basename`` (suffixes only, its default terms), computed faster: cleanco tries
each of its ~320 legal terms against the end of the name in turn, about 40 µs a name, and a routing batch
brings hundreds of new names. Here the terms are filed by their last word, so only the few that end in the
name's current last word are tried, in cleanco's order; the result is the same (the tests compare them).

1. Trim trailing symbols; split the name into words, and a normalized copy (case-folded, accents and
   ".,-" removed) into words compared with the terms.
2. Walk the terms in cleanco's order (most words first, then alphabetically), trying only those whose last
   word is the name's last word now. A term that ends the name is removed from both word lists, and the
   walk goes on after it, as cleanco's loop does.
3. Join the words left and trim trailing symbols again.
"""

import re
from bisect import bisect_left
from functools import cache

from cleanco.clean import normalized, prepare_default_terms, strip_punct, tail_removal_rexp


def basename(name: str) -> str:
    name = _strip_tail(name)
    words = name.split()
    normal_words = [strip_punct(word) for word in _normalized(name).split()]
    terms, positions_by_last_word = _terms()
    after = 0
    while normal_words:
        positions = positions_by_last_word.get(normal_words[-1], ())
        for position in positions[bisect_left(positions, after) :]:
            size, term = terms[position]
            if normal_words[-size:] == term:
                del normal_words[-size:]
                del words[-size:]
                after = position + 1
                break
        else:
            break
    return _strip_tail(" ".join(words))


def _strip_tail(name: str) -> str:
    """cleanco's ``strip_tail`` (trailing symbols other than the dot go), with its compiled pattern used
    directly rather than looked up again by ``re.search`` on every call."""
    match = _TAIL.search(name)
    return name[: match.start()] if match is not None else name


_TAIL = re.compile(tail_removal_rexp)


def _normalized(name: str) -> str:
    """cleanco's ``normalized`` (case-folded, accents removed); for ASCII text that is the case-folded text
    (its decomposition, accents and special letters are all outside ASCII), at a tenth of the time."""
    return name.casefold() if name.isascii() else normalized(name)


@cache
def _terms() -> tuple[list[tuple[int, list[str]]], dict[str, list[int]]]:
    """cleanco's default terms in its order, and the positions of the terms ending in each word."""
    terms = prepare_default_terms()
    positions_by_last_word: dict[str, list[int]] = {}
    for position, (size, term) in enumerate(terms):
        if size:
            positions_by_last_word.setdefault(term[-1], []).append(position)
    return terms, positions_by_last_word
