"""The REST API (/api/v1/): a thin door over the same selectors and workflow as the pages.

Its own app (label `api`) only for its one model, the named API token, so that its migrations
live beside it.
"""
