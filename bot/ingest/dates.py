"""Dates as news sites print them (Indonesian and English), parsed without heavy libraries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

MONTHS: dict[str, int] = {
    # English
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
    # Indonesian
    "januari": 1, "februari": 2, "pebruari": 2, "maret": 3, "mei": 5, "juni": 6, "juli": 7,
    "agustus": 8, "oktober": 10, "desember": 12, "agu": 8, "agt": 8, "okt": 10, "des": 12,
}  # fmt: skip
WEEKDAYS = (
    "monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun|"
    "senin|selasa|rabu|kamis|jumat|jum'at|sabtu|minggu|ahad"
)
# Indonesian time zones, and the common English ones.
ZONES: dict[str, int] = {"wib": 7, "wita": 8, "wit": 9, "utc": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4,
                         "pst": -8, "pdt": -7, "bst": 1, "cet": 1, "cest": 2}  # fmt: skip

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_TIME = (
    r"(?:[,\s|-]+(?:pukul\s+|at\s+)?(?P<h>\d{1,2})[:.](?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*(?P<ampm>am|pm)?"
    r"\s*(?P<tz>wib|wita|wit|utc|gmt|est|edt|pst|pdt|bst|cet|cest)?)?"
)
_DAY_MONTH_YEAR = re.compile(
    rf"\b(?P<d>\d{{1,2}})\s+(?P<m>{_MONTH})\.?,?\s+(?P<y>\d{{4}}){_TIME}", re.IGNORECASE
)
_MONTH_DAY_YEAR = re.compile(
    rf"\b(?P<m>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}}){_TIME}", re.IGNORECASE
)
_ISO = re.compile(
    r"\b(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
    r"(?:\.\d+)?(?P<tz>Z|[+-]\d{2}:?\d{2})?)?"
)
_NUMERIC = re.compile(rf"\b(?P<d>\d{{1,2}})/(?P<mo>\d{{1,2}})/(?P<y>\d{{4}}){_TIME}", re.IGNORECASE)
_DATE_WORDS = re.compile(
    rf"\b(published|updated|posted|diterbitkan|dipublikasikan|diperbarui|terbit|pukul|on|at|{WEEKDAYS})\b",
    re.IGNORECASE,
)
RELATIVE_TIME = re.compile(
    r"^\W*(updated|diperbarui|published|posted|diterbitkan)?\s*(\d+|an?|se)\s*"
    r"(minutes?|mins?|hours?|hrs?|days?|weeks?|menit|jam|hari|minggu)\s+(ago|yang lalu|lalu)\W*$"
    r"|^\W*(just now|baru saja)\W*$",
    re.IGNORECASE,
)


def _zone(name: str | None) -> timezone:
    if not name:
        return UTC
    if name[0] in "+-":
        digits = name[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        return timezone(-offset if name[0] == "-" else offset)
    return timezone(timedelta(hours=ZONES.get(name.lower(), 0)))


def _build(year: int, month: int, day: int, match: re.Match[str]) -> datetime | None:
    groups = match.groupdict()
    hour = int(groups.get("h") or 0)
    minute = int(groups.get("mi") or 0)
    second = int(groups.get("s") or 0)
    ampm = (groups.get("ampm") or "").lower()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=_zone(groups.get("tz")))
    except ValueError:
        return None


def find_date(text: str) -> datetime | None:
    """The first plausible date (and time) in `text`, timezone-aware (UTC when none is given)."""
    found = _find(text)
    return found[1] if found else None


def _find(text: str) -> tuple[tuple[int, int], datetime] | None:
    candidates: list[tuple[tuple[int, int], datetime]] = []
    for pattern in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR):
        match = pattern.search(text)
        if match:
            month = MONTHS[match["m"].lower().rstrip(".")]
            value = _build(int(match["y"]), month, int(match["d"]), match)
            if value:
                candidates.append((match.span(), value))
    for pattern in (_ISO, _NUMERIC):
        match = pattern.search(text)
        if match:
            value = _build(int(match["y"]), int(match["mo"]), int(match["d"]), match)
            if value:
                candidates.append((match.span(), value))
    plausible = [(span, value) for span, value in candidates if 1990 <= value.year <= 2100]
    return min(plausible, key=lambda item: item[0][0]) if plausible else None


def is_date_line(line: str) -> bool:
    """A short line that is essentially a date: at most a few words besides the date itself."""
    if len(line) > 100:
        return False
    if RELATIVE_TIME.match(line):
        return True
    found = _find(line)
    if found is None:
        return False
    (start, end), _value = found
    rest = _DATE_WORDS.sub(" ", line[:start] + " " + line[end:])
    # "Dilan 1990 dijadwalkan tayang 25 Januari 2018." is a sentence, not a date line.
    return len(re.findall(r"\w+", rest)) <= 3 and not line.rstrip().endswith(".")
