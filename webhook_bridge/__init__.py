"""The webhook bridge: verifies Kirim's signed webhooks and stores them in Kafka.

`python -m webhook_bridge`; see docs/webhooks.md for its answers and metrics.
"""
