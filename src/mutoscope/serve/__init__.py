"""Serving: the HTTP API, its database, the job queue, workers, accounts, credits and the waitlist.

Start with `app.create_app`; the design is in ARCHITECTURE.md (Serving) and docs/API.md.
"""
