"""The status projector: folds `kirim.message-status` into `message_statuses`.

`python -m projector` runs the consumer group, `python -m projector rebuild`
replays the topic; see docs/webhooks.md for the fold's rules and the metrics.
"""
