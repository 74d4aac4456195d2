"""The OAuth 2.0 authorization server for the CLI (API.md 4), built on oauthlib.

`tokens` keeps the store side (hashed tokens, login families), `validator` is oauthlib's
`RequestValidator` over it, `endpoints` composes oauthlib's endpoints, `browser` holds the
login pages' sessions, CSRF tokens and throttling, and `pages` renders them.
"""
