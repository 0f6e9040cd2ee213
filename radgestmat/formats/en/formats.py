"""English dates on every page: day month year and a 24-hour clock, never 12/01 (which day is it?) nor p.m.

One pattern per language (radgestmat/formats/fr for French); the short form only abbreviates the month.
Input formats are Django's own (not set here).
"""

DATE_FORMAT = "j F Y"  # 1 December 2026
SHORT_DATE_FORMAT = "j M Y"  # 1 Dec 2026
DATETIME_FORMAT = "j F Y, H:i"  # 1 December 2026, 09:30
SHORT_DATETIME_FORMAT = "j M Y, H:i"  # 1 Dec 2026, 09:30
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j F"
