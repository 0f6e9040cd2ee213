"""French dates on every page, in the pattern of the English ones (radgestmat/formats/en): 1 décembre 2026 à 09:30.

Django's French short form (01/12/2026) is replaced so that a page never mixes two ways of writing a date.
"""

DATE_FORMAT = "j F Y"  # 1 décembre 2026
SHORT_DATE_FORMAT = "j N Y"  # 1 déc. 2026 ("M" would give "Jul" for juillet)
DATETIME_FORMAT = "j F Y à H:i"  # 1 décembre 2026 à 09:30
SHORT_DATETIME_FORMAT = "j N Y à H:i"  # 1 déc. 2026 à 09:30
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j F"
