"""The small kit every service shares: settings, database, migrations, errors, logging, metrics, auth.

Each service is a thin FastAPI app built with :func:`services.kit.app.create_app`; everything that must
behave the same everywhere (problem bodies, request IDs, JSON logs, metrics, health) lives here once.
"""
