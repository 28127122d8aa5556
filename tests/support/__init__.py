"""What the tests share: two ways to run a service, and the helpers around them.

- ``inprocess``: the service's app in the test process over ``httpx.ASGITransport``, lifespan and database
  included. The default for a test of a route's requests and responses: no process, no socket, no start-up.
- ``procs``: the service as its own uvicorn process, launched as the stack's supervisor launches its children
  (``services.runner.process``). For what needs one: a kill, a timeout, a socket, several services calling
  each other, uvicorn's own behaviour, a start-up that must fail.
- ``stack``: a set of service processes on one PostgreSQL, each with its own database and only its own keys.
"""
