"""The users service: accounts, argon2id passwords, sessions, EdDSA access tokens and the JWKS."""
