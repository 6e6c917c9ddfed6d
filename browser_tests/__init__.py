"""The portal in a real browser: Playwright drives Debian's headless Chromium against the portal
started as `make run` starts it (web, worker, beat and the AWS sandbox, from the Procfile).

Kept apart from imports/tests: these tests need no test database, only the running portal.
Run them with `.venv/bin/python -m pytest browser_tests -p no:django`.
"""
