"""Intake: `broadcast.requests` events -> campaigns and the per-recipient ledger.

Pure core: `expand` (recipients -> ledger rows), `header` (what chunks must agree
on), `control` (pause/resume/cancel), `sender` (which number sends), `phone`,
`render`. Shell: `store` (PostgreSQL), `accounts` (Kirim), `deadletter` (DLQ),
`handler` (one event), `loop` (the Kafka consumer), `service` (assembly).
Behaviour that the contract leaves open is written down in docs/intake.md.
"""
