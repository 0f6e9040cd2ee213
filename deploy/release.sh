#!/usr/bin/env bash
# The release step, once per deploy, before (re)starting web, workers and beat:
# database schema, static files for nginx, and the beat schedule entries (existing ones,
# perhaps edited in the admin, are left alone).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python}"
"$py" manage.py migrate --noinput
"$py" manage.py collectstatic --noinput
"$py" manage.py setup_schedule
