"""Local infrastructure without Docker: a real Kafka broker and PostgreSQL on loopback.

Standard library only, so it runs before the project's virtualenv exists.
`python -m devstack up|down|status` drives it; the test fixtures use the same
classes with a private state directory and free ports.
"""
