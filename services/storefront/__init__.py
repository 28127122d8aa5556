"""The storefront: server-rendered pages for shoppers, a backend-for-frontend over the public API.

The browser holds one encrypted, httpOnly session cookie and never a bearer token; the storefront talks to
the platform only through the gateway's public routes, like any other client.
"""
