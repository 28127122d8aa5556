"""The public API gateway: routing by the service catalog, JWT verification, rate limits, retries,
circuit breakers, aggregated readiness and one merged OpenAPI document."""
