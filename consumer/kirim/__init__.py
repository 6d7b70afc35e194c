"""The Kirim API client the consumer sends through (see docs/kirim-api.md)."""
