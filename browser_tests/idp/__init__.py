"""A small OpenID Connect provider for the browser journeys: django-oauth-toolkit in a Django
project of its own (SQLite in a throwaway folder, an RSA key made at start), with users whose
group claims the journeys change. Started by browser_tests/idp_server.py; never part of the portal."""
