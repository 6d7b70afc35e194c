"""A local, wire-compatible simulator of the Kirim messaging API (`python -m sandbox`).

Layout: pure, clock-injected decision modules (`idempotency`, `ratelimit`,
`quota`, `validation`, `outcome`, `timeline`, `faults`, `delivery`, `payload`,
`signature`) under a synchronous `engine`, wrapped by thin async shells (`app`
and `asgi` for HTTP, `dispatcher` for webhooks, `server` for the lifecycle). `testing`
runs one in-process for tests. The behaviour is documented in docs/sandbox.md.
"""
