"""Reading a search query (pure): phone digits, CJK n-grams, and the Latin remainder.

The ``customer_search_terms`` trigger indexes a profile the same way: CJK characters of the
names as single characters and bigrams (``张伟明`` → 张, 伟, 明, 张伟, 伟明), everything else
lower-cased for trigram matching, and phone digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CJK_RUN", "ParsedQuery", "cjk_grams", "parse"]

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff"
CJK_RUN = re.compile(f"[{_CJK}]+")
_PHONE_LIKE = re.compile(r"^[\d\s+().-]+$")


@dataclass(frozen=True)
class ParsedQuery:
    #: Digits to find inside phone numbers (a phone-like query of at least 3 digits).
    digits: str | None
    #: CJK n-grams every match must contain.
    cjk: tuple[str, ...]
    #: The rest, lower-cased, for trigram (typo-tolerant) matching.
    latin: str


def cjk_grams(run: str) -> list[str]:
    """The bigrams of a CJK run, or the character itself when it stands alone."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def parse(query: str) -> ParsedQuery:
    text = query.strip()
    digits = re.sub(r"\D", "", text)
    if _PHONE_LIKE.match(text) and len(digits) >= 3:
        return ParsedQuery(digits=digits, cjk=(), latin="")
    grams: list[str] = []
    for run in CJK_RUN.findall(text):
        grams += cjk_grams(run)
    latin = " ".join(CJK_RUN.sub(" ", text).lower().split())
    return ParsedQuery(digits=None, cjk=tuple(dict.fromkeys(grams)), latin=latin)
