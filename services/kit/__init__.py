"""The small kit every service shares: settings, database, migrations, errors, logging, metrics, auth.

Each service is a thin FastAPI app built with :func:`services.kit.app.create_app`; everything that must
behave the same everywhere (problem bodies, request IDs, JSON logs, metrics, health, background loops,
pagination cursors, idempotency keys) lives here once.

A data service has one shape: ``main.py`` (``build_app``: start-up hooks and background loops),
``settings.py``, ``deps.py`` (typed ``Annotated`` dependencies: the routes never read ``app.state``),
``api.py`` (public routes), ``internal.py`` (service-to-service routes, when it has any), ``models.py``
(bodies), ``store.py`` (SQL), ``errors.py`` (named errors the store and routes raise), ``migrations/`` and
``README.md``.
"""
